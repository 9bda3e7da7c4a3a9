use pikku::prelude::*;
struct Services;

struct Api;

impl Api {
    fn helper() -> u32 {
        1
    }

    // Takes `self`: the macro says it is a method.
    #[pikku_func(route = "/method", auth = false)]
    async fn method(&self, _s: &Services) -> u32 {
        1
    }

    // Names `Self`: the macro says it is in an `impl` block.
    #[pikku_func(route = "/uses-self", auth = false)]
    async fn uses_self(_s: &Services) -> u32 {
        Self::helper()
    }

    // Neither: it looks like a free function to the macro, so the error is rustc's, about the
    // route struct that cannot go in an `impl` block.
    #[pikku_func(route = "/count", auth = false)]
    async fn count(_s: &Services) -> u32 {
        1
    }
}

fn main() {}
