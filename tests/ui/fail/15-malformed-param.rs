use pikku::prelude::*;
struct Services;

#[derive(Deserialize, JsonSchema)]
struct In {
    id: u32,
}

#[pikku_func(route = "/items/{id", auth = false)]
async fn item(_s: &Services, input: In) -> u32 {
    input.id
}

fn main() {}
