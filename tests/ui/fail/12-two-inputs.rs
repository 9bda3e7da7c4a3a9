use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false)]
async fn two(_s: &Services, a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
