use pikku::prelude::*;
struct Services;

#[derive(JsonSchema)]
struct Update {
    n: u32,
}

#[pikku_func(route = "/x", response = "stream", auth = false)]
async fn updates(_s: &Services) -> impl Stream<Item = Update> {
    stream! { yield Update { n: 1 }; }
}

fn main() {}
