// The server runs functions on a multi-threaded runtime: a future that holds a value which is
// not `Send` across an `.await` is refused, naming the function.
use pikku::prelude::*;
use std::rc::Rc;
struct Services;

#[pikku_func(route = "/x", auth = false)]
async fn counter(_s: &Services) -> u32 {
    let n = Rc::new(1);
    tokio::task::yield_now().await;
    *n
}

fn main() {}
