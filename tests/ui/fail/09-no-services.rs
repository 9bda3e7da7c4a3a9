use pikku::prelude::*;

#[pikku_func(route = "/x", auth = false)]
async fn lonely() -> u32 {
    1
}

fn main() {}
