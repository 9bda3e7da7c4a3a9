use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = "no", tags = "streaming")]
async fn tagged(_s: &Services) -> u32 {
    1
}

fn main() {}
