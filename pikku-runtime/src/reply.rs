//! [`Reply`]: a function that answers with JSON or with a stream, decided at run time.

/// Either a JSON value or an event stream, chosen by the function per request — progressive
/// enhancement, as Pikku's `getDataWithSSE` example does: `?realtime=true` streams, otherwise
/// JSON.
///
/// The route is documented with both content types (`application/json` and
/// `text/event-stream`).
///
/// ```ignore
/// #[pikku_func(route = "/data", auth = false)]
/// async fn get_data(_: &Services, q: DataQuery) -> Reply<Snapshot, impl Stream<Item = Snapshot>> {
///     if q.realtime { Reply::Stream(live()) } else { Reply::Json(snapshot()) }
/// }
/// ```
#[derive(Debug, Clone)]
pub enum Reply<T, S> {
    /// Answer with `application/json`.
    Json(T),
    /// Answer with `text/event-stream`.
    Stream(S),
}
