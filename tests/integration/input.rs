//! Typed input from path, query and body; errors as JSON with the field named; 404/405.

use crate::fixtures;
use crate::support::*;
use serde_json::{Value, json};

async fn post(srv: &TestServer, path: &str, body: &str) -> (u16, Value) {
    let res = client()
        .post(srv.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert_eq!(res.headers()["content-type"], "application/json");
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn path_query_and_body_merge_into_the_input() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let (status, body) = post(
        &srv,
        "/t/echo/alice?limit=5&verbose=true",
        r#"{"note":"hi","userId":"mallory"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"userId": "alice", "limit": 5, "verbose": true, "note": "hi"})
    );
}

#[tokio::test]
async fn wrong_types_are_422_naming_the_field() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let (status, body) = post(&srv, "/t/echo/alice?limit=lots", "").await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "invalid_input");
    assert_eq!(body["field"], "limit");
    let (status, body) = post(&srv, "/t/echo/alice", r#"{"verbose": "very"}"#).await;
    assert_eq!((status, body["field"].clone()), (422, json!("verbose")));
    let res = get(&srv.url("/stream/updates?interval_ms=-3")).await;
    assert_eq!(res.status(), 404, "demo routes are not on the fixtures app");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let (status, body) = post(&srv, "/t/echo/alice", "{not json").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "bad_request");
    let (status, _) = post(&srv, "/t/echo/alice", "[1, 2]").await;
    assert_eq!(
        status, 400,
        "a non-object body cannot merge with path params"
    );
}

#[tokio::test]
async fn body_limit_is_413() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app.body_limit(64)).await;
    let big = format!(r#"{{"note":"{}"}}"#, "x".repeat(100));
    let (status, body) = post(&srv, "/t/echo/alice", &big).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "payload_too_large");
}

#[tokio::test]
async fn typed_errors_map_to_status_and_json() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let res = client().put(srv.url("/t/conflict")).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "conflict", "message": "already there", "status": 409})
    );
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_405_with_json() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let res = get(&srv.url("/no/such/route")).await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let res = client().post(srv.url("/t/thing")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let allow = res.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    let res = client().delete(srv.url("/t/thing")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"n": 0}));
}
