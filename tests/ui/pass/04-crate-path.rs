//! `crate = "..."`: a crate that re-exports pikku, used by code that names pikku only through
//! it. Every kind of output, an input, a session and a permission check go through the path.

/// Stands for a framework crate that re-exports pikku.
mod my_reexport {
    pub use pikku;
}

use my_reexport::pikku::prelude::*;

pub struct Services;
pub struct Session;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPath {
    user_id: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Snapshot {
    n: u32,
}

async fn is_self(_s: &Services, input: &UserPath, _session: &Session) -> bool {
    !input.user_id.is_empty()
}

/// JSON.
#[pikku_func(route = "/users/{userId}", permissions = [is_self], crate = "my_reexport::pikku")]
async fn user(_s: &Services, _input: UserPath, _session: &Session) -> Result<Snapshot, PikkuError> {
    Ok(Snapshot { n: 1 })
}

/// A stream of events.
#[pikku_func(route = "/ticks", response = "stream", auth = false, crate = "my_reexport::pikku")]
async fn ticks(_s: &Services) -> Result<impl Stream<Item = Result<Event<Snapshot>, PikkuError>>, PikkuError> {
    Ok(try_stream! { yield Event::new(Snapshot { n: 1 }); })
}

/// JSON or a stream, chosen at run time.
#[pikku_func(route = "/data/{userId}", crate = "my_reexport::pikku")]
async fn data(_s: &Services, input: UserPath, _session: &Session) -> Reply<Snapshot, impl Stream<Item = Snapshot>> {
    if input.user_id.is_empty() {
        Reply::Json(Snapshot { n: 0 })
    } else {
        Reply::Stream(stream! { yield Snapshot { n: 1 }; })
    }
}

fn main() {
    assert_eq!(user::route().path, "/users/{userId}");
    assert_eq!(ticks::route().path, "/ticks");
    assert_eq!(data::route().path, "/data/{userId}");
}
