use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false, rate_limit = "ten per second")]
async fn limited(_s: &Services) -> u32 {
    1
}

fn main() {}
