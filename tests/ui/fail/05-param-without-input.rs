use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/users/{userId}", auth = false)]
async fn user(_s: &Services) -> u32 {
    1
}

fn main() {}
