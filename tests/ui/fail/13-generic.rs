use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false)]
async fn generic<T: Default + Serialize>(_s: &Services) -> u32 {
    1
}

fn main() {}
