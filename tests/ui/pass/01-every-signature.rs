//! Every supported function shape compiles and registers.
use std::time::Duration;

use futures_util::stream::BoxStream;
use pikku::prelude::*;

pub struct Services;
pub struct Session;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct In {
    id: u32,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Out {
    n: u32,
}

#[pikku_func(route = "/a", auth = false)]
async fn services_only(_s: &Services) -> Out {
    Out { n: 1 }
}

#[pikku_func(route = "/b/{id}", method = "post", auth = false)]
async fn with_input(_s: &Services, input: In) -> Out {
    Out { n: input.id }
}

#[pikku_func(route = "/c", method = "put", auth = false)]
async fn with_ctx(_s: &Services, input: In, ctx: &Context) -> Result<Out, PikkuError> {
    let _ = ctx.request_id();
    Ok(Out { n: input.id })
}

#[pikku_func(route = "/d", method = "patch")]
async fn session_fn(_s: &Services, input: In, _session: &Session) -> Out {
    Out { n: input.id }
}

#[pikku_func(route = "/e", method = "delete")]
async fn session_and_ctx(_s: &Services, _session: &Session, _ctx: &Context) {}

#[pikku_func(route = "/f", response = "stream", auth = false)]
async fn plain_stream(_s: &Services) -> impl Stream<Item = Out> {
    stream! { yield Out { n: 1 }; }
}

#[pikku_func(route = "/g", response = "stream", auth = false)]
async fn fallible_items(_s: &Services) -> impl Stream<Item = Result<Out, PikkuError>> {
    try_stream! { yield Out { n: 1 }; }
}

#[pikku_func(route = "/h", response = "stream", auth = false, heartbeat_ms = 5000)]
async fn event_items(_s: &Services, ctx: &Context) -> impl Stream<Item = Event<Out>> {
    let from = ctx.last_event_id().and_then(|l| l.as_u64()).unwrap_or(0) as u32;
    stream! {
        yield Event::new(Out { n: from }).with_id(from + 1).unwrap().with_retry(Duration::from_secs(1));
    }
}

#[pikku_func(route = "/i/{id}", response = "stream", auth = false)]
async fn fallible_open(_s: &Services, input: In) -> Result<impl Stream<Item = Result<Event<Out>, PikkuError>>, PikkuError> {
    Ok(stream! { yield Ok(Event::new(Out { n: input.id })); })
}

#[pikku_func(route = "/j", response = "stream", auth = false)]
async fn boxed(_s: &Services) -> BoxStream<'static, Out> {
    Box::pin(stream! { yield Out { n: 1 }; })
}

#[pikku_func(route = "/k", auth = false, tags = ["x", "y"], summary = "Either", description = "JSON or stream", operation_id = "eitherOp")]
async fn either(_s: &Services, input: In) -> Reply<Out, impl Stream<Item = Out>> {
    if input.id == 0 {
        Reply::Json(Out { n: 0 })
    } else {
        Reply::Stream(stream! { yield Out { n: 1 }; })
    }
}

#[pikku_func(route = "/l", response = "stream")]
async fn session_stream(_s: &Services, session: &Session) -> pikku::Result<Reply<Out, impl Stream<Item = Out>>> {
    let _ = session;
    Ok(Reply::Stream(stream! { yield Out { n: 1 }; }))
}

/// A public function in a module, registered explicitly.
pub mod nested {
    use super::*;
    #[pikku_func(route = "/m", auth = false)]
    pub async fn public_fn(_s: &Services) -> Vec<Out> {
        vec![]
    }
}

fn main() {
    let routes = pikku::routes![services_only, with_input, nested::public_fn];
    assert_eq!(routes.len(), 3);
    assert_eq!(with_input::route().path, "/b/{id}");
    assert_eq!(either::route().operation_id, "eitherOp");
    assert_eq!(pikku::registry::all_routes().len(), 13);
}
