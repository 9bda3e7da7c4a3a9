use pikku::prelude::*;
struct Services;

#[derive(Deserialize)]
struct Query {
    q: String,
}

#[pikku_func(route = "/search", auth = false)]
async fn search(_s: &Services, input: Query) -> String {
    input.q
}

fn main() {}
