use pikku::prelude::*;
struct Session;

#[pikku_func(route = "x", method = "fetch", colour = "blue", auth = false)]
fn many(_session: &Session) -> u32 {
    1
}

fn main() {}
