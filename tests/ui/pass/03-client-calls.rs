//! With the runtime's `client` feature (on for the root package's tests), every function gets
//! typed calls; a function whose types cannot travel (input not `Serialize`, output not
//! `Deserialize`) still compiles: only calling it would be an error.
use pikku::client::{CallOptions, Client, ClientError, ClientStream};
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

/// Only deserialized by the server, never sent by a client.
#[derive(Deserialize, JsonSchema)]
pub struct ServerOnlyIn {
    id: u32,
}

/// Only serialized by the server.
#[derive(Serialize, JsonSchema)]
pub struct ServerOnlyOut {
    n: u32,
}

#[pikku_func(route = "/json/{id}", method = "post")]
async fn json_fn(_s: &Services, input: In, _session: &Session) -> Result<Out, PikkuError> {
    Ok(Out { n: input.id })
}

#[pikku_func(route = "/none", auth = false)]
async fn no_input(_s: &Services) -> Out {
    Out { n: 0 }
}

#[pikku_func(route = "/stream", response = "stream", auth = false)]
async fn stream_fn(_s: &Services, input: In) -> impl Stream<Item = Result<Event<Out>, PikkuError>> {
    stream! { yield Ok(Event::new(Out { n: input.id })); }
}

#[pikku_func(route = "/either", auth = false)]
async fn either_fn(_s: &Services) -> Reply<Out, impl Stream<Item = Out>> {
    Reply::Stream(stream! { yield Out { n: 1 }; })
}

#[pikku_func(route = "/server-only", auth = false)]
async fn server_only(_s: &Services, input: ServerOnlyIn) -> ServerOnlyOut {
    ServerOnlyOut { n: input.id }
}

#[allow(dead_code)]
async fn calls(client: &Client) -> Result<(), ClientError> {
    let _: Out = json_fn::call(client, In { id: 1 }).await?;
    let _: Out = json_fn::call_with(client, In { id: 1 }, CallOptions::default()).await?;
    let _: Out = no_input::call(client).await?;
    let _: ClientStream<Out> = stream_fn::call(client, In { id: 1 });
    let _: ClientStream<Out> = stream_fn::call_with(client, In { id: 1 }, CallOptions::default().last_event_id("7"));
    let _: Out = either_fn::call(client).await?;
    let _: ClientStream<Out> = either_fn::stream(client);
    let _: ClientStream<Out> = either_fn::stream_with(client, CallOptions::default());
    Ok(())
}

fn main() {
    let _ = server_only::route();
}
