use pikku::prelude::*;
struct Services;

#[pikku_func(route = "stream/updates", auth = false)]
async fn no_slash(_s: &Services) -> u32 {
    1
}

fn main() {}
