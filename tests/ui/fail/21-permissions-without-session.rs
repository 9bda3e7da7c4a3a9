use pikku::prelude::*;
struct Services;

async fn is_admin(_s: &Services, _i: &(), _u: &()) -> bool {
    true
}

#[pikku_func(route = "/x", permissions = [is_admin])]
async fn admin(_s: &Services) -> u32 {
    1
}

fn main() {}
