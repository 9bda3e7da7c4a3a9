//! Registration: inventory auto-mount, explicit lists, nesting and merging, startup errors,
//! and the session hook.

use pikku::prelude::*;
use pikku::{SessionService, StartupError};
use serde_json::{Value, json};

use crate::fixtures;
use crate::support::*;

pub struct DupServices;

#[pikku_func(route = "/dup", auth = false)]
async fn dup_one(_s: &DupServices) -> u32 {
    1
}

#[pikku_func(route = "/dup", auth = false)]
async fn dup_two(_s: &DupServices) -> u32 {
    2
}

#[test]
fn two_functions_on_one_route_fail_at_startup() {
    let err = Pikku::new(DupServices).try_router().unwrap_err();
    let StartupError::DuplicateRoute {
        path,
        first,
        second,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*path, "/dup");
    assert_eq!([*first, *second].len(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("dup_one") && msg.contains("dup_two") && msg.contains("registration.rs"),
        "{msg}"
    );
}

pub struct ParamServices;

#[derive(Deserialize, JsonSchema)]
pub struct WrongInput {
    #[allow(dead_code)]
    pub id: u32,
}

#[pikku_func(route = "/items/{itemId}", auth = false)]
async fn wrong_param(_s: &ParamServices, _input: WrongInput) -> u32 {
    1
}

#[test]
fn route_params_must_exist_in_the_input_type() {
    let err = Pikku::new(ParamServices).try_router().unwrap_err();
    assert!(
        matches!(
            err,
            StartupError::MissingPathParam {
                param: "itemId",
                ..
            }
        ),
        "{err}"
    );
}

pub struct AuthServices;

#[derive(Debug)]
pub struct User {
    pub name: String,
}

/// Reads the user from `x-user`: enough to show the hook; see the README for real sessions.
pub struct HeaderSessions;

impl SessionService for HeaderSessions {
    type Session = User;
    async fn load(&self, headers: &http::HeaderMap) -> pikku::Result<Option<User>> {
        Ok(headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(|name| User {
                name: name.to_string(),
            }))
    }
}

/// Auth by default: a session function.
#[pikku_func(route = "/me")]
async fn me(_s: &AuthServices, session: &User) -> Value {
    json!({"name": session.name})
}

/// Auth by default, without taking the session.
#[pikku_func(route = "/members-only")]
async fn members_only(_s: &AuthServices) -> u32 {
    7
}

#[test]
fn auth_routes_need_a_session_service() {
    let err = Pikku::new(AuthServices).try_router().unwrap_err();
    assert!(
        matches!(err, StartupError::NoSessionService { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn auth_routes_answer_401_without_session_and_pass_the_typed_session() {
    let srv = TestServer::pikku(Pikku::new(AuthServices).sessions(HeaderSessions)).await;
    for path in ["/me", "/members-only"] {
        let res = get(&srv.url(path)).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    let res = client()
        .get(srv.url("/me"))
        .header("x-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"name": "alice"}));
}

#[tokio::test]
async fn explicit_registration_mounts_exactly_the_listed_routes() {
    let app = Pikku::with_routes(
        fixtures::TestServices::default(),
        pikku::routes![crate::fixtures::echo],
    );
    assert_eq!(app.routes().len(), 1);
    let srv = TestServer::pikku(app).await;
    let res = client().post(srv.url("/t/echo/bob")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(get(&srv.url("/t/events")).await.status(), 404);
}

#[test]
fn explicit_registration_checks_the_services_type() {
    let err = Pikku::with_routes(DupServices, pikku::routes![crate::fixtures::echo])
        .try_router()
        .unwrap_err();
    assert!(
        matches!(err, StartupError::ServicesTypeMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn nests_and_merges_with_user_routes_and_layers() {
    let (app, ..) = fixtures::app();
    let shutdown = app.shutdown_handle();
    let router = axum::Router::new()
        .nest("/api", app.router())
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(tower_http::compression::CompressionLayer::new());
    let srv = TestServer::start(router, shutdown).await;
    assert_eq!(get(&srv.url("/health")).await.text().await.unwrap(), "ok");
    let res = get(&srv.url("/api/t/thing")).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"n": 1}));
    let mut ev = events(get(&srv.url("/api/t/events")).await);
    assert_eq!(next_event(&mut ev, 5).await.unwrap().id, "1");
}

/// The services type of an app whose functions were written for another `LonelyServices`.
pub struct LonelyServices;

mod elsewhere {
    use pikku::prelude::*;

    /// Same name, another type: the usual way to get a silent 404.
    pub struct LonelyServices;

    #[pikku_func(route = "/lonely", auth = false)]
    pub async fn lonely(_s: &LonelyServices) -> u32 {
        1
    }
}

/// What `tracing` writes while `f` runs on this thread.
fn captured_log(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_function_for_another_services_type_is_named_in_the_startup_log() {
    let log = captured_log(|| {
        let app = Pikku::new(LonelyServices);
        assert!(app.routes().is_empty());
    });
    let line = log
        .lines()
        .find(|l| l.contains("not mounted: `lonely`"))
        .unwrap_or_else(|| panic!("no line about `lonely` in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("registration::elsewhere::LonelyServices")
            && line.contains("Pikku::new(integration::registration::LonelyServices)")
            && line.contains("registration.rs"),
        "{line}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("no route mounted") && l.contains("Explicit registration")),
        "{log}"
    );
}

#[test]
fn mounted_routes_are_logged() {
    let log = captured_log(|| {
        Pikku::new(DupServices);
    });
    assert!(
        log.contains("mounted GET /dup -> `dup_one`") && log.contains("`dup_two`"),
        "{log}"
    );
}

#[test]
fn startup_errors_are_one_paragraph_and_router_panics_with_it() {
    let err = Pikku::new(DupServices).try_router().unwrap_err();
    assert_eq!(format!("{err:?}"), format!("pikku: {err}"));
    assert!(!err.to_string().contains('\n'));
    let panic = std::panic::catch_unwind(|| Pikku::new(DupServices).router()).unwrap_err();
    let msg = panic.downcast_ref::<String>().expect("a formatted message");
    assert_eq!(*msg, format!("{err:?}"));
}

#[test]
fn a_services_type_mismatch_names_both_types() {
    let err = Pikku::with_routes(DupServices, pikku::routes![crate::fixtures::echo])
        .try_router()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("fixtures::TestServices") && msg.contains("registration::DupServices"),
        "{msg}"
    );
}
