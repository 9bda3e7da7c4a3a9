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
