//! `routes![]` takes every function visible where it is used, whatever its visibility keyword
//! (the private-function check must not refuse these).
use pikku::prelude::*;

pub struct Services;

#[pikku_func(route = "/private", auth = false)]
async fn private_here(_s: &Services) -> u32 {
    1
}

mod api {
    use super::*;

    #[pikku_func(route = "/crate", auth = false)]
    pub(crate) async fn crate_fn(_s: &Services) -> u32 {
        1
    }

    #[pikku_func(route = "/super", auth = false)]
    pub(super) async fn super_fn(_s: &Services) -> u32 {
        1
    }

    #[pikku_func(route = "/inner", auth = false)]
    async fn inner(_s: &Services) -> u32 {
        1
    }

    /// A private function, named in its own module.
    pub fn inner_routes() -> Vec<&'static pikku::RouteDef> {
        pikku::routes![inner]
    }
}

fn main() {
    let routes = pikku::routes![private_here, api::crate_fn, crate::api::super_fn];
    assert_eq!(routes.len(), 3);
    assert_eq!(api::inner_routes()[0].path, "/inner");
}
