//! How a generated handler calls its function: the generic half of every `#[pikku_func]`.
//!
//! The attribute emits one call per function, `run_json` or `run_stream`, naming the
//! function and, as marker types, where its parameters go, what it returns and how its stream
//! items are sent. Everything with behaviour (permission checks, the call, the answer, the
//! stream's events) is written once here, as generic code; the expansion holds no `async` block
//! and no `stream!` generator of its own. That is the point: a generator written in the
//! expansion is parsed, expanded and checked again on every build of the user's crate, where a
//! generic function of the runtime is checked once, and only instantiated per function.
//!
//! The function is passed as its fn item, a zero-sized value, through [`Invoke`]: a trait over
//! every parameter order the convention allows, implemented for `Fn(&S, ..) -> impl Future`
//! with the future's lifetime tied to the borrowed arguments, which a closure cannot express.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use async_stream::stream;
use futures_util::Stream;

use crate::call::{self, Call, Prepared, SessionArg, Step, Steps};
use crate::checks::{PikkuInput, PikkuOutput};
use crate::context::Context;
use crate::error::PikkuError;
use crate::reply::Reply;
use crate::sse::{self, Event, Frame};

/// Parameter marker: the input (`I`, by value).
pub struct In;
/// Parameter marker: the session (`&U`).
pub struct Ses;
/// Parameter marker: the request context (`&Context`).
pub struct Ctx;

/// A function of the convention `(services: &S [, input: I] [, session: &U] [, ctx: &Context])`,
/// its parameters after the services in the order of the marker tuple `A` (of [`In`], [`Ses`],
/// [`Ctx`]). Implemented for every such `async fn`; the future may borrow the arguments.
pub trait Invoke<'a, A, S: 'a, I, U: 'a>: Copy + Send + Sync + 'static {
    /// What the function returns.
    type Out;
    /// The function's future.
    type Fut: Future<Output = Self::Out> + Send + 'a;
    /// Calls the function with the parameters it takes.
    fn invoke(self, services: &'a S, input: I, session: &'a U, ctx: &'a Context) -> Self::Fut;
}

/// One impl per parameter order: `names; [markers] (parameter: type)*`, where the parameters
/// are among the names of `invoke`'s arguments (input, session, context; the services are
/// always first). The names are passed in, as a macro's own local names are hygienic.
macro_rules! invoke {
    ($i:ident $u:ident $c:ident; [$($m:ident)*] $($p:ident: $t:ty),*) => {
        impl<'a, S: 'a, I, U: 'a, F, Fut> Invoke<'a, ($($m,)*), S, I, U> for F
        where
            F: Fn(&'a S $(, $t)*) -> Fut + Copy + Send + Sync + 'static,
            Fut: Future + Send + 'a,
        {
            type Out = Fut::Output;
            type Fut = Fut;
            #[allow(unused_variables)]
            #[inline]
            fn invoke(self, s: &'a S, $i: I, $u: &'a U, $c: &'a Context) -> Fut {
                self(s $(, $p)*)
            }
        }
    };
}

invoke!(i u c; []);
invoke!(i u c; [In] i: I);
invoke!(i u c; [Ses] u: &'a U);
invoke!(i u c; [Ctx] c: &'a Context);
invoke!(i u c; [In Ses] i: I, u: &'a U);
invoke!(i u c; [Ses In] u: &'a U, i: I);
invoke!(i u c; [In Ctx] i: I, c: &'a Context);
invoke!(i u c; [Ctx In] c: &'a Context, i: I);
invoke!(i u c; [Ses Ctx] u: &'a U, c: &'a Context);
invoke!(i u c; [Ctx Ses] c: &'a Context, u: &'a U);
invoke!(i u c; [In Ses Ctx] i: I, u: &'a U, c: &'a Context);
invoke!(i u c; [In Ctx Ses] i: I, c: &'a Context, u: &'a U);
invoke!(i u c; [Ses In Ctx] u: &'a U, i: I, c: &'a Context);
invoke!(i u c; [Ses Ctx In] u: &'a U, c: &'a Context, i: I);
invoke!(i u c; [Ctx In Ses] c: &'a Context, i: I, u: &'a U);
invoke!(i u c; [Ctx Ses In] c: &'a Context, u: &'a U, i: I);

/// One permission check: `async fn(&S, &I, &U) -> bool`.
pub trait Check<'a, S: 'a, I: 'a, U: 'a>: Copy + Send + Sync + 'static {
    /// The check's future.
    type Fut: Future<Output = bool> + Send + 'a;
    /// Runs the check.
    fn check(self, services: &'a S, input: &'a I, session: &'a U) -> Self::Fut;
}

impl<'a, S: 'a, I: 'a, U: 'a, F, Fut> Check<'a, S, I, U> for F
where
    F: Fn(&'a S, &'a I, &'a U) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'a,
{
    type Fut = Fut;
    fn check(self, s: &'a S, i: &'a I, u: &'a U) -> Fut {
        self(s, i, u)
    }
}

/// A permission check's future, boxed.
type CheckFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A permission check, its signature checked: what [`check`] returns.
pub struct Checked<S, I, U, C> {
    c: C,
    run: for<'a> fn(C, &'a S, &'a I, &'a U) -> CheckFuture<'a>,
}

impl<S, I, U, C: Copy> Clone for Checked<S, I, U, C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S, I, U, C: Copy> Copy for Checked<S, I, U, C> {}

/// One check of the list. A call of its own in the expansion, spanned at the check's name in
/// the attribute, so a check with the wrong signature is reported there, once: the list's
/// type, [`Checked`], does not repeat the bound.
pub fn check<S, I, U, C>(c: C) -> Checked<S, I, U, C>
where
    C: for<'a> Check<'a, S, I, U>,
{
    // Boxed: a check runs once per request, and a fn pointer here keeps `Check` off the
    // list's own bounds.
    Checked {
        c,
        run: |c, s, i, u| Box::pin(c.check(s, i, u)),
    }
}

/// A function's permission checks, in order: `()` for none, `(check(c), "name", rest)` for
/// more.
pub trait Checks<S, I, U>: Copy + Send + Sync + 'static {
    /// The name of the first check that refuses, if one does.
    fn first_refusal<'a>(
        self,
        services: &'a S,
        input: &'a I,
        session: &'a U,
    ) -> impl Future<Output = Option<&'static str>> + Send + 'a;
}

impl<S: Sync, I: Sync, U: Sync> Checks<S, I, U> for () {
    async fn first_refusal<'a>(self, _: &'a S, _: &'a I, _: &'a U) -> Option<&'static str> {
        None
    }
}

impl<S, I, U, C, R> Checks<S, I, U> for (Checked<S, I, U, C>, &'static str, R)
where
    S: Sync + 'static,
    I: Sync + 'static,
    U: Sync + 'static,
    C: Copy + Send + Sync + 'static,
    R: Checks<S, I, U>,
{
    async fn first_refusal<'a>(self, s: &'a S, i: &'a I, u: &'a U) -> Option<&'static str> {
        let (check, name, rest) = self;
        if !(check.run)(check.c, s, i, u).await {
            return Some(name);
        }
        rest.first_refusal(s, i, u).await
    }
}

/// Output marker: the value as it is (`T`, a stream, a [`Reply`]).
pub struct Plain;
/// Output marker: the value in a `Result` whose error answers the request.
pub struct Fallible;

/// What a JSON function returns, marked `M` ([`Plain`] or [`Fallible`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a Pikku function: it must be `Serialize` and `Send` (in a `Result`, with an error that is `Into<PikkuError>`)",
    label = "add `#[derive(Serialize)]` to the output type",
    note = "outputs are sent as JSON: derive `Serialize` and `JsonSchema` (both in `pikku::prelude`)"
)]
pub trait JsonOutput<M>: Send {
    /// The answer's step, with the headers the function added.
    fn answer(self, ctx: &Context) -> Step;
}

impl<T: PikkuOutput + Send> JsonOutput<Plain> for T {
    fn answer(self, ctx: &Context) -> Step {
        call::json_step(ctx, serde_json::to_vec(&self))
    }
}

impl<T: PikkuOutput + Send, E: Into<PikkuError> + Send> JsonOutput<Fallible> for Result<T, E> {
    fn answer(self, ctx: &Context) -> Step {
        match self {
            Ok(v) => call::json_step(ctx, serde_json::to_vec(&v)),
            Err(e) => call::json_error(ctx, e.into()),
        }
    }
}

/// Output marker: a [`Reply`] (JSON or a stream).
pub struct Either;
/// Output marker: a [`Reply`] in a `Result`.
pub struct FallibleEither;

/// How a stream function's output starts.
pub enum Start<St> {
    /// The function answered once (an error, or a [`Reply::Json`]).
    Once(Step),
    /// A stream of items.
    Stream(St),
}

/// What a stream (or either) function returns, marked `M` ([`Plain`], [`Fallible`],
/// [`Either`], [`FallibleEither`]).
pub trait StreamOutput<M>: Send {
    /// The stream's items.
    type Item;
    /// The stream.
    type Items: Stream<Item = Self::Item> + Send;
    /// The stream, or the one step that answers instead.
    fn start(self, ctx: &Context) -> Start<Self::Items>;
}

impl<St: Stream + Send> StreamOutput<Plain> for St {
    type Item = St::Item;
    type Items = St;
    fn start(self, _: &Context) -> Start<St> {
        Start::Stream(self)
    }
}

impl<St: Stream + Send, E: Into<PikkuError> + Send> StreamOutput<Fallible> for Result<St, E> {
    type Item = St::Item;
    type Items = St;
    fn start(self, ctx: &Context) -> Start<St> {
        match self {
            Ok(s) => Start::Stream(s),
            Err(e) => Start::Once(call::fail(ctx, e)),
        }
    }
}

impl<T: PikkuOutput + Send, St: Stream + Send> StreamOutput<Either> for Reply<T, St> {
    type Item = St::Item;
    type Items = St;
    fn start(self, ctx: &Context) -> Start<St> {
        match self {
            Reply::Json(v) => Start::Once(JsonOutput::<Plain>::answer(v, ctx)),
            Reply::Stream(s) => Start::Stream(s),
        }
    }
}

impl<T: PikkuOutput + Send, St: Stream + Send, E: Into<PikkuError> + Send>
    StreamOutput<FallibleEither> for Result<Reply<T, St>, E>
{
    type Item = St::Item;
    type Items = St;
    fn start(self, ctx: &Context) -> Start<St> {
        match self {
            Ok(r) => r.start(ctx),
            Err(e) => Start::Once(call::fail(ctx, e)),
        }
    }
}

/// Item marker: `T`, sent as its JSON.
pub struct Data;
/// Item marker: [`Event<T>`], with its fields.
pub struct Evented;
/// Item marker: [`Frame<T>`], already encoded.
pub struct Framed;
/// Item marker: `Result<X, E>` of items marked `W`; an error is sent as `event: error`.
pub struct TryItem<W>(PhantomData<W>);

/// A stream item, marked `W`: how it becomes an event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a stream item of a Pikku function: it does not implement `Serialize`",
    label = "add `#[derive(Serialize)]` to the item type",
    note = "stream items are sent as JSON: derive `Serialize` and `JsonSchema` (both in `pikku::prelude`)"
)]
pub trait ItemStep<W> {
    /// The item's event.
    fn step(self) -> Step;
}

impl<T: PikkuOutput> ItemStep<Data> for T {
    #[inline]
    fn step(self) -> Step {
        call::event_step(sse::encode_json(&self))
    }
}

impl<T: PikkuOutput> ItemStep<Evented> for Event<T> {
    #[inline]
    fn step(self) -> Step {
        call::event_step(self.encode())
    }
}

impl<T> ItemStep<Framed> for Frame<T> {
    #[inline]
    fn step(self) -> Step {
        call::frame_raw(self)
    }
}

impl<W, X: ItemStep<W>, E: Into<PikkuError>> ItemStep<TryItem<W>> for Result<X, E> {
    #[inline]
    fn step(self) -> Step {
        match self {
            Ok(v) => v.step(),
            Err(e) => call::event_error(e.into()),
        }
    }
}

/// The call's typed parts: services, input, session. A call of its own in the expansion, spanned
/// at the input type, so a missing `Deserialize` is reported there and not at the output.
#[inline]
pub fn prepare<S, I, U>(call: Call) -> Result<Prepared<S, I, U>, PikkuError>
where
    S: Send + Sync + 'static,
    I: PikkuInput,
    U: SessionArg,
{
    call.prepare::<S, I, U>()
}

/// The 403 of a refused permission check.
fn forbidden(check: &'static str) -> PikkuError {
    PikkuError::forbidden(format!("permission check `{check}` refused this request"))
}

/// The handler of a JSON function: run the checks, call `f`, answer once.
///
/// `A` places the parameters ([`Invoke`]), `P` are the checks ([`Checks`]), `M` marks the
/// output ([`JsonOutput`]).
pub fn run_json<S, I, U, A, P, M, F>(
    prepared: Result<Prepared<S, I, U>, PikkuError>,
    checks: P,
    f: F,
) -> Steps
where
    S: Send + Sync + 'static,
    I: Send + Sync + 'static,
    U: SessionArg,
    P: Checks<S, I, U::Target>,
    F: for<'a> Invoke<'a, A, S, I, U::Target>,
    for<'a> <F as Invoke<'a, A, S, I, U::Target>>::Out: JsonOutput<M>,
{
    let p = match prepared {
        Ok(p) => p,
        Err(e) => return call::failed(e),
    };
    // A plain future in a one-item stream: the compiler builds no generator state machine
    // per function for what answers once.
    Box::pin(futures_util::stream::once(async move {
        let Prepared {
            services,
            input,
            session,
            ctx,
        } = p;
        if let Some(name) = checks
            .first_refusal(&*services, &input, session.target())
            .await
        {
            return call::fail(&ctx, forbidden(name));
        }
        f.invoke(&*services, input, session.target(), &ctx)
            .await
            .answer(&ctx)
    }))
}

/// The handler of a stream (or either) function: run the checks, call `f`, then the stream's
/// events, each item marked `W` ([`ItemStep`]).
pub fn run_stream<S, I, U, A, P, M, W, X, F>(
    prepared: Result<Prepared<S, I, U>, PikkuError>,
    checks: P,
    f: F,
) -> Steps
where
    S: Send + Sync + 'static,
    I: Send + Sync + 'static,
    U: SessionArg,
    P: Checks<S, I, U::Target>,
    F: for<'a> Invoke<'a, A, S, I, U::Target>,
    for<'a> <F as Invoke<'a, A, S, I, U::Target>>::Out: StreamOutput<M, Item = X>,
    X: ItemStep<W>,
{
    let p = match prepared {
        Ok(p) => p,
        Err(e) => return call::failed(e),
    };
    Box::pin(stream! {
        let Prepared { services, input, session, ctx } = p;
        if let Some(name) = checks.first_refusal(&*services, &input, session.target()).await {
            yield call::fail(&ctx, forbidden(name));
            return;
        }
        let out = f.invoke(&*services, input, session.target(), &ctx).await;
        let start = out.start(&ctx);
        match start {
            Start::Once(step) => yield step,
            Start::Stream(items) => {
                yield call::open(&ctx);
                for await item in items {
                    yield item.step();
                }
            }
        };
    })
}
