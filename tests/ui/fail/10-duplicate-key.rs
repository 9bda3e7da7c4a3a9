use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false, route = "/y")]
async fn twice(_s: &Services) -> u32 {
    1
}

fn main() {}
