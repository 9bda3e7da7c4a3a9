use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false)]
async fn owned(_s: Services) -> u32 {
    1
}

fn main() {}
