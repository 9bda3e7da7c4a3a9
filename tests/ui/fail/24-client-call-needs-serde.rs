//! With the `client` feature, calling a function whose input is not `Serialize` is an error at
//! the call (the function itself compiles).
use pikku::client::Client;
use pikku::prelude::*;

pub struct Services;

#[derive(Deserialize, JsonSchema)]
pub struct ServerOnlyIn {
    id: u32,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Out {
    n: u32,
}

#[pikku_func(route = "/server-only", auth = false)]
async fn server_only(_s: &Services, input: ServerOnlyIn) -> Out {
    Out { n: input.id }
}

async fn call(client: &Client) {
    let _ = server_only::call(client, ServerOnlyIn { id: 1 }).await;
}

fn main() {
    let _ = call;
}
