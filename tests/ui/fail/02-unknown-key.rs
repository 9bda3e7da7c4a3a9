use pikku::prelude::*;
struct Services;

#[pikku_func(rout = "/x", auth = false)]
async fn typo(_s: &Services) -> u32 {
    1
}

fn main() {}
