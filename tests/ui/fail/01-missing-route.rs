use pikku::prelude::*;
struct Services;

#[pikku_func(method = "get", auth = false)]
async fn no_route(_s: &Services) -> u32 {
    1
}

fn main() {}
