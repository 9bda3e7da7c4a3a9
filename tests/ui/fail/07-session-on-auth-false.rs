use pikku::prelude::*;
struct Services;
struct Session;

#[pikku_func(route = "/x", auth = false)]
async fn mine(_s: &Services, _session: &Session) -> u32 {
    1
}

fn main() {}
