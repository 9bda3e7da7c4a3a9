use pikku::prelude::*;
struct Services;
struct Session;

#[derive(Deserialize, JsonSchema)]
struct In {
    id: u32,
}

fn is_owner(_s: &Services, _i: &In) -> bool {
    true
}

#[pikku_func(route = "/x/{id}", permissions = [is_owner])]
async fn owned(_s: &Services, input: In, _session: &Session) -> u32 {
    input.id
}

fn main() {}
