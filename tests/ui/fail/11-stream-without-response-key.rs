use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", auth = false)]
async fn forgot(_s: &Services) -> impl Stream<Item = u32> {
    stream! { yield 1; }
}

fn main() {}
