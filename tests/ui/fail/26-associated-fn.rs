use pikku::prelude::*;
struct Services;

struct Api;

impl Api {
    #[pikku_func(route = "/count", auth = false)]
    async fn count(_s: &Services) -> u32 {
        1
    }
}

fn main() {}
