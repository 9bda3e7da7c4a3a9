use pikku::prelude::*;
struct Services;

#[derive(Serialize, JsonSchema)]
struct Tick {
    n: u32,
}

// The first thing a FastAPI or Pikku (TypeScript) user writes: a generator body.
#[pikku_func(route = "/ticks", response = "stream", auth = false)]
async fn ticks(_s: &Services) -> impl Stream<Item = Tick> {
    for n in 0..3 {
        yield Tick { n };
    }
}

fn main() {}
