use pikku::prelude::*;
struct Services;

#[derive(JsonSchema)]
struct Out {
    n: u32,
}

#[pikku_func(route = "/x", auth = false)]
async fn out(_s: &Services) -> Result<Out, PikkuError> {
    Ok(Out { n: 1 })
}

fn main() {}
