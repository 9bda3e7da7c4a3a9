use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", method = "fetch", auth = false)]
async fn bad_method(_s: &Services) -> u32 {
    1
}

fn main() {}
