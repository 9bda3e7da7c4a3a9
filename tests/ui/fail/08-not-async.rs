use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false)]
fn blocking(_s: &Services) -> u32 {
    1
}

fn main() {}
