use pikku::prelude::*;
pub struct Services;

mod api {
    use pikku::prelude::*;

    // Not `pub`: other modules cannot name it.
    #[pikku_func(route = "/ticks", auth = false)]
    async fn lib_ticks(_s: &super::Services) -> u32 {
        1
    }
}

fn main() {
    let _app = Pikku::with_routes(Services, pikku::routes![api::lib_ticks]);
}
