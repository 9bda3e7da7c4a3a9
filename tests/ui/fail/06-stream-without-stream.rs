use pikku::prelude::*;
struct Services;

#[pikku_func(route = "/x", response = "stream", auth = false)]
async fn not_a_stream(_s: &Services) -> Vec<u32> {
    vec![1, 2]
}

fn main() {}
