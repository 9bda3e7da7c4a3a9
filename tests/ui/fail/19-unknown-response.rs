use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", response = "sse", auth = false)]
async fn sse(_s: &Services) -> u32 {
    1
}

fn main() {}
