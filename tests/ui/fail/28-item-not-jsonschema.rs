use pikku::prelude::*;
struct Services;

#[derive(Serialize)]
struct Tick {
    n: u32,
}

#[pikku_func(route = "/ticks", response = "stream", auth = false)]
async fn ticks(_s: &Services) -> impl Stream<Item = Tick> {
    stream! { yield Tick { n: 1 }; }
}

fn main() {}
