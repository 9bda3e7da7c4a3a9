//! The OpenAPI document (`/openapi.json`) and the docs page (`/docs`): validated by an
//! independent validator, checked against the declarations, snapshotted, and driven in a real
//! headless browser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pikku::openapi::{self, OpenApiConfig, SpecVersion};
use pikku::{Pikku, StartupError};
use serde_json::{Value, json};

use crate::demo;
use crate::fixtures;
use crate::registration::{AuthServices, HeaderSessions};
use crate::support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn fetch_json(url: &str) -> Value {
    let res = get(url).await;
    assert_eq!(res.status(), 200, "{url}");
    assert_eq!(res.headers()["content-type"], "application/json", "{url}");
    res.json().await.unwrap()
}

fn doc_of<S: Send + Sync + 'static>(app: &Pikku<S>, cfg: &OpenApiConfig) -> Value {
    openapi::document(app.routes(), cfg).to_json().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The independent validator (PyPI `openapi-spec-validator`, installed by `.ci/run`).

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn validator() -> PathBuf {
    if let Some(p) = std::env::var_os("PIKKU_OPENAPI_VALIDATOR") {
        return p.into();
    }
    let venv = repo().join(".ci/venv/bin/openapi-spec-validator");
    if venv.is_file() {
        return venv;
    }
    find_in_path("openapi-spec-validator").unwrap_or_else(|| {
        panic!(
            "this test needs the OpenAPI validator `openapi-spec-validator` (PyPI) and did not find \
             it in .ci/venv/bin, on PATH, or in PIKKU_OPENAPI_VALIDATOR: run `.ci/run` (it installs \
             it into .ci/venv) or `pip install openapi-spec-validator`"
        )
    })
}

/// Runs the validator on `doc` as OpenAPI `version` ("3.1" or "3.2"): (valid?, its output).
async fn validate(doc: &Value, version: &str) -> (bool, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let file = std::env::temp_dir().join(format!(
        "pikku-openapi-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = tokio::process::Command::new(validator())
        .arg("--schema")
        .arg(version)
        .arg("--validation-errors")
        .arg("all")
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running openapi-spec-validator: {e}"));
    let _ = std::fs::remove_file(&file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn served_document_passes_an_independent_openapi_3_1_validator() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let doc = fetch_json(&srv.url("/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let (ok, out) = validate(&doc, "3.1").await;
    assert!(ok, "validator rejected the demo document:\n{out}");
    assert!(out.contains("OK"), "{out}");

    // The validator is not a rubber stamp: a broken copy fails.
    let mut broken = doc.clone();
    broken["paths"]["/data"]["get"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    let (ok, out) = validate(&broken, "3.1").await;
    assert!(!ok, "a response without description passed:\n{out}");
    let mut dangling = doc.clone();
    dangling["paths"]["/data"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/Nope"});
    let (ok, out) = validate(&dangling, "3.1").await;
    assert!(!ok, "a dangling $ref passed:\n{out}");

    // Routes the demo lacks: auth, POST with path params and body, PUT, DELETE.
    let (fixture_app, ..) = fixtures::app();
    let auth_app = Pikku::new(AuthServices).sessions(HeaderSessions);
    for doc in [
        doc_of(&fixture_app, &OpenApiConfig::default()),
        doc_of(&auth_app, &OpenApiConfig::default()),
    ] {
        let (ok, out) = validate(&doc, "3.1").await;
        assert!(ok, "validator rejected:\n{out}\n{doc:#}");
    }
}

#[tokio::test]
async fn openapi_3_2_document_gives_stream_items_as_item_schema() {
    let cfg = OpenApiConfig {
        spec_version: SpecVersion::V3_2,
        ..OpenApiConfig::default()
    };
    let srv = TestServer::pikku(demo::app().await.unwrap().openapi(cfg)).await;
    let doc = fetch_json(&srv.url("/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.2.0");
    let (ok, out) = validate(&doc, "3.2").await;
    assert!(ok, "validator rejected the 3.2 document:\n{out}");
    for path in ["/stream/updates", "/stream/with-errors", "/data"] {
        let media = &doc["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"];
        assert!(media["itemSchema"].is_object(), "{path}: {media:#}");
        assert_eq!(media["itemSchema"], media["schema"], "{path}");
    }
    // The 3.1 flavour has no `itemSchema` (a 3.1 validator rejects it)...
    let doc31 = doc_of(&demo::app().await.unwrap(), &OpenApiConfig::default());
    assert!(!doc31.to_string().contains("itemSchema"));
    // ...which is why the 3.2 flavour is not the default:
    let (ok, _) = validate(&json!({"openapi": "3.1.0", "info": doc["info"], "paths": doc["paths"], "components": doc["components"]}), "3.1").await;
    assert!(!ok, "a 3.1 validator accepted itemSchema");
}

// ---------------------------------------------------------------------------------------------
// What the document says about the declarations.

/// The component a `{"$ref": "#/components/schemas/Name"}` names.
fn component<'a>(doc: &'a Value, schema: &Value) -> &'a Value {
    let name = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a component ref: {schema}"));
    &doc["components"]["schemas"][name]
}

fn event_variant<'a>(event_schema: &'a Value, title: &str) -> &'a Value {
    event_schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["title"] == title)
        .unwrap_or_else(|| panic!("no {title} variant in {event_schema:#}"))
}

#[tokio::test]
async fn demo_document_says_what_the_declarations_say() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let doc = fetch_json(&srv.url("/openapi.json")).await;
    assert_eq!(doc["info"]["title"], "Pikku API");
    assert_eq!(doc["info"]["version"], "0.1.0");

    // Exactly the demo's routes; the docs routes themselves are not listed.
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        [
            "/auth/login",
            "/auth/logout",
            "/channels/stream",
            "/channels/{channel}/messages",
            "/data",
            "/health/ready",
            "/rooms/{room}/events",
            "/rooms/{room}/messages",
            "/rooms/{room}/presence",
            "/stream/updates",
            "/stream/with-errors",
            "/tickers/{ticker}",
            "/tickers/{ticker}/latest",
            "/users/{userId}/notifications",
            "/users/{userId}/notifications/snapshot"
        ]
    );
    let tags: Vec<&Value> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["name"])
        .collect();
    assert_eq!(
        tags,
        [
            &json!("auth"),
            &json!("health"),
            &json!("notifications"),
            &json!("realtime"),
            &json!("rooms"),
            &json!("streaming")
        ]
    );

    // The session routes: bearer token or session cookie; the path param documented; a stream
    // of Notification, and publishing takes a JSON body.
    let notifications = &doc["paths"]["/users/{userId}/notifications"];
    for method in ["get", "post"] {
        let op = &notifications[method];
        let security = op["security"].as_array().unwrap();
        assert_eq!(
            security.len(),
            2,
            "{method}: bearer or cookie: {security:?}"
        );
        let codes = op["responses"].as_object().unwrap();
        assert!(
            codes.contains_key("401") && codes.contains_key("403"),
            "{method}"
        );
        let path_param = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "path")
            .unwrap();
        assert_eq!(path_param["name"], "userId");
        assert_eq!(path_param["required"], true);
    }
    assert!(notifications["post"].get("requestBody").is_some());
    let events = component(
        &doc,
        &notifications["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"],
    );
    assert_eq!(
        event_variant(events, "item")["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/Notification"
    );
    assert_eq!(doc["paths"]["/auth/login"]["post"]["security"], json!([]));

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Update",
        "UpdateData",
        "StatusUpdate",
        "Reading",
        "ErrorBody",
        "StreamError",
        "StreamShutdown",
        "UpdateEvent",
        "StatusUpdateEvent",
    ] {
        assert!(schemas.contains_key(name), "no component {name}");
    }
    // Schemas are shared through `$ref`s, not repeated.
    assert_eq!(
        schemas["Update"]["properties"]["data"]["$ref"],
        "#/components/schemas/UpdateData"
    );
    assert!(
        !doc.to_string().contains("$defs"),
        "refs must point at components"
    );

    // GET /stream/updates: a stream of Update, one optional integer query param and the
    // runtime's optional `lastEventId` (a first connection's resume point), public.
    let op = &doc["paths"]["/stream/updates"]["get"];
    assert_eq!(op["operationId"], "stream_updates");
    assert_eq!(op["summary"], "Stream live updates");
    assert_eq!(
        op["description"],
        "One update per `interval_ms` (default 1000, at least 50), counting from 1."
    );
    assert_eq!(op["tags"], json!(["streaming"]));
    assert_eq!(op["security"], json!([]));
    let params = op["parameters"].as_array().unwrap();
    assert_eq!(params.len(), 2, "{params:#?}");
    assert_eq!(params[1]["name"], "lastEventId");
    assert_eq!(params[1]["in"], "query");
    assert_eq!(params[1].get("required"), None);
    assert_eq!(params[1]["schema"]["type"], "string");
    assert!(
        params[1]["description"]
            .as_str()
            .unwrap()
            .contains("`Last-Event-ID`")
    );
    assert_eq!(params[0]["name"], "interval_ms");
    assert_eq!(params[0]["in"], "query");
    assert_eq!(params[0].get("required"), None);
    assert_eq!(params[0]["schema"]["type"], json!(["integer", "null"]));
    assert_eq!(
        params[0]["description"],
        "Milliseconds between updates (default 1000, at least 50)."
    );
    assert!(op.get("requestBody").is_none());
    let ok = &op["responses"]["200"];
    let content = ok["content"].as_object().unwrap();
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["text/event-stream"],
        "a stream route answers only with events"
    );
    // One event schema per item type, shared by the streams of that type.
    let events_ref = &content["text/event-stream"]["schema"];
    assert_eq!(events_ref["$ref"], "#/components/schemas/UpdateEvent");
    let events = component(&doc, events_ref);
    assert_eq!(events["required"], json!(["data"]));
    let item = event_variant(events, "item");
    assert_eq!(
        item["properties"]["data"],
        json!({"type": "string", "contentMediaType": "application/json",
               "contentSchema": {"$ref": "#/components/schemas/Update"}})
    );
    let error = event_variant(events, "error");
    assert_eq!(error["properties"]["event"], json!({"const": "error"}));
    assert_eq!(
        error["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/StreamError"
    );
    assert_eq!(
        event_variant(events, "shutdown")["properties"]["event"],
        json!({"const": "shutdown"})
    );

    // Error responses: the shared schema; input errors since it takes input; no 401/403 as
    // it is public; no 413 as GET reads no body.
    let codes: Vec<&str> = op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(codes, ["200", "400", "422", "429", "500", "503"]);
    assert_eq!(
        op["responses"]["422"]["$ref"],
        "#/components/responses/UnprocessableEntity"
    );
    for (name, r) in doc["components"]["responses"].as_object().unwrap() {
        assert_eq!(
            r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
            "{name}"
        );
    }
    assert_eq!(
        doc["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"]["schema"]["type"],
        "integer"
    );

    // GET /stream/with-errors: items are the tagged StatusUpdate enum.
    let events = component(
        &doc,
        &doc["paths"]["/stream/with-errors"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"],
    );
    assert_eq!(
        event_variant(events, "item")["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/StatusUpdate"
    );
    let status_values: Vec<&Value> = schemas["StatusUpdate"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["properties"]["status"]["const"])
        .collect();
    assert_eq!(status_values, [&json!("success"), &json!("error")]);

    // GET /data (Reply): both content types, JSON with the output schema.
    let op = &doc["paths"]["/data"]["get"];
    let content = op["responses"]["200"]["content"].as_object().unwrap();
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["application/json", "text/event-stream"]
    );
    assert_eq!(
        content["application/json"]["schema"]["$ref"],
        "#/components/schemas/Update"
    );
    assert_eq!(
        content["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/UpdateEvent"
    );
    let names: Vec<&Value> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(
        names,
        [
            &json!("interval_ms"),
            &json!("realtime"),
            &json!("lastEventId")
        ]
    );
}

#[test]
fn auth_routes_require_a_bearer_token_or_the_session_cookie() {
    let app = Pikku::new(AuthServices).sessions(HeaderSessions);
    let doc = doc_of(&app, &OpenApiConfig::default());
    for path in ["/me", "/members-only"] {
        let op = &doc["paths"][path]["get"];
        assert_eq!(
            op["security"],
            json!([{"bearerAuth": []}, {"sessionCookie": []}]),
            "{path}"
        );
        assert_eq!(
            op["responses"]["401"]["$ref"],
            "#/components/responses/Unauthorized"
        );
        assert_eq!(
            op["responses"]["403"]["$ref"],
            "#/components/responses/Forbidden"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"],
        json!({
            "bearerAuth": {"type": "http", "scheme": "bearer",
                "description": "A session token: `Authorization: Bearer <token>`."},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "pikku_session",
                "description": "A session cookie; what browsers' `EventSource` sends, as it cannot set headers."},
        })
    );
    // The cookie's name follows the app.
    let cfg = OpenApiConfig {
        session_cookie: "sid".into(),
        ..OpenApiConfig::default()
    };
    assert_eq!(
        doc_of(&app, &cfg)["components"]["securitySchemes"]["sessionCookie"]["name"],
        "sid"
    );
}

#[test]
fn body_routes_document_path_params_and_the_body_apart() {
    let (app, ..) = fixtures::app();
    let doc = doc_of(&app, &OpenApiConfig::default());
    let op = &doc["paths"]["/t/echo/{userId}"]["post"];
    assert_eq!(op["operationId"], "echo");
    assert_eq!(
        op["parameters"],
        json!([{"name": "userId", "in": "path", "required": true, "style": "simple",
                "schema": {"type": "string"}}])
    );
    // The body is the input without the field the path fills; nothing in it is required.
    let body = &op["requestBody"];
    assert_eq!(body.get("required"), None);
    let schema = &body["content"]["application/json"]["schema"];
    let props: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(props, ["limit", "note", "verbose"]);
    assert_eq!(schema.get("required"), None, "{schema:#}");
    let codes: Vec<&str> = op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // 403: the CSRF check of unsafe methods; 415: the body must be declared as JSON.
    assert_eq!(
        codes,
        [
            "200", "400", "403", "413", "415", "422", "429", "500", "503"
        ]
    );
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/EchoInput"
    );

    // GET and DELETE on one path, no input: no parameters, no body, no input errors.
    let item = &doc["paths"]["/t/thing"];
    for method in ["get", "delete"] {
        let op = &item[method];
        assert!(op.get("parameters").is_none() && op.get("requestBody").is_none());
        assert!(op["responses"].get("422").is_none(), "{method}");
    }
    assert_eq!(item["get"]["operationId"], "get_thing");
    assert_eq!(item["delete"]["operationId"], "delete_thing");
    // A stream route with a path param; a stream of `Result` items says its items can fail.
    let op = &doc["paths"]["/t/missing/{id}"]["get"];
    assert_eq!(op["parameters"][0]["in"], "path");
    assert_eq!(op["parameters"][0]["schema"]["type"], "integer");
    let fallible = &doc["paths"]["/t/fallible"]["get"]["responses"]["200"];
    assert!(
        fallible["description"]
            .as_str()
            .unwrap()
            .contains("Items can fail")
    );
}

#[tokio::test]
async fn demo_document_snapshot() {
    let doc = doc_of(&demo::app().await.unwrap(), &OpenApiConfig::default());
    insta::assert_json_snapshot!("demo_openapi_3_1", doc);
}

// ---------------------------------------------------------------------------------------------
// Serving: configuration, turning off, nesting, startup errors.

#[tokio::test]
async fn info_and_paths_are_configurable() {
    let cfg = OpenApiConfig {
        title: "Updates".into(),
        version: "2.0.0".into(),
        description: Some("Live updates.".into()),
        json_path: Some("/spec.json".into()),
        docs_path: None,
        servers: vec!["/api".into()],
        ..OpenApiConfig::default()
    };
    let app = demo::app().await.unwrap().openapi(cfg);
    let shutdown = app.shutdown_handle();
    let router = axum::Router::new().nest("/api", app.router());
    let srv = TestServer::start(router, shutdown).await;
    let doc = fetch_json(&srv.url("/api/spec.json")).await;
    assert_eq!(
        doc["info"],
        json!({"title": "Updates", "version": "2.0.0", "description": "Live updates."})
    );
    assert_eq!(doc["servers"], json!([{"url": "/api"}]));
    assert!(doc["paths"].get("/spec.json").is_none());
    assert_eq!(get(&srv.url("/api/openapi.json")).await.status(), 404);
    assert_eq!(get(&srv.url("/api/docs")).await.status(), 404);
    let res = client()
        .post(srv.url("/api/spec.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET");
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "method_not_allowed"
    );

    let srv = TestServer::pikku(
        demo::app()
            .await
            .unwrap()
            .openapi(OpenApiConfig::disabled()),
    )
    .await;
    assert_eq!(get(&srv.url("/openapi.json")).await.status(), 404);
    assert_eq!(get(&srv.url("/docs")).await.status(), 404);
    assert_eq!(get(&srv.url("/data")).await.status(), 200);
}

#[tokio::test]
async fn docs_paths_that_clash_fail_at_startup() {
    let with = async |json_path: Option<&str>, docs_path: Option<&str>| {
        demo::app()
            .await
            .unwrap()
            .openapi(OpenApiConfig {
                json_path: json_path.map(Into::into),
                docs_path: docs_path.map(Into::into),
                ..OpenApiConfig::default()
            })
            .try_router()
            .map(|_| ())
    };
    let err = with(Some("/openapi.json"), Some("/data"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StartupError::ReservedPath { path, .. } if path == "/data"),
        "{err}"
    );
    assert!(err.to_string().contains("get_data"), "{err}");
    let err = with(Some("openapi.json"), None).await.unwrap_err();
    assert!(err.to_string().contains("start with `/`"), "{err}");
    let err = with(Some("/x"), Some("/x")).await.unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");
    let err = with(None, Some("/docs/{page}")).await.unwrap_err();
    assert!(matches!(err, StartupError::ReservedPath { .. }), "{err}");
    with(None, Some("/reference")).await.unwrap();
}

#[tokio::test]
async fn docs_page_is_one_self_contained_html_page() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let res = get(&srv.url("/docs")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"));
    for external in ["src=", "<link", "http://", "https://", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page loads something: {external}"
        );
    }
    // The document is inline (the page works with the JSON endpoint off).
    assert!(html.contains("\"operationId\":\"stream_updates\""));
    assert!(!html.contains("/*PIKKU_DOCS*/"));
}

// ---------------------------------------------------------------------------------------------
// The docs page in a real browser.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_in_headless_chromium_lists_operations_and_streams_live_events() {
    let script = repo().join("tests/browser/docs.mjs");
    assert!(
        repo()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "this test drives Chromium with playwright-core: run `.ci/run`, or `npm ci` in tests/browser"
    );
    let chromium = std::env::var("PIKKU_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "this test needs Chromium at {chromium}: run `.ci/run` (it installs Debian's chromium) or \
         set PIKKU_CHROMIUM"
    );

    // Nested under /api, as apps often are: the page must find the streams relative to itself.
    let app = demo::app().await.unwrap();
    let shutdown = app.shutdown_handle();
    let srv = TestServer::start(axum::Router::new().nest("/api", app.router()), shutdown).await;
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(srv.url("/api/docs"))
            .arg("stream_updates")
            .arg("interval_ms=50")
            .arg("--send=get_data")
            .arg("--send-prefilled=login")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check finishes within 90 s")
    .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("browser check printed no JSON ({e}):\n{stdout}"));

    assert_eq!(seen["title"], "Pikku API — docs");
    let groups = seen["operations"].as_array().unwrap();
    let tags: Vec<&str> = groups.iter().map(|g| g["tag"].as_str().unwrap()).collect();
    assert_eq!(
        tags,
        [
            "auth",
            "health",
            "notifications",
            "realtime",
            "rooms",
            "streaming"
        ],
        "{groups:#?}"
    );
    let streaming = groups.iter().find(|g| g["tag"] == "streaming").unwrap();
    let listed: Vec<(&str, &str, &str)> = streaming["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let text = o["visibleText"].as_str().unwrap();
            assert!(text.contains("public"), "{text}");
            (
                o["operationId"].as_str().unwrap(),
                o["path"].as_str().unwrap(),
                text,
            )
        })
        .collect();
    let expected = [
        ("get_data", "/data", "Data, live or not", "JSON or stream"),
        (
            "stream_updates",
            "/stream/updates",
            "Stream live updates",
            "stream",
        ),
        (
            "stream_with_errors",
            "/stream/with-errors",
            "Stream readings of a flaky source",
            "stream",
        ),
    ];
    assert_eq!(listed.len(), expected.len(), "{listed:#?}");
    for ((id, path, text), (eid, epath, summary, badge)) in listed.iter().zip(expected) {
        assert_eq!((*id, *path), (eid, epath));
        for shown in ["GET", epath, summary, badge] {
            assert!(
                text.contains(shown),
                "{id}: {shown:?} not shown in {text:?}"
            );
        }
    }
    let schemas = seen["schemas"].as_array().unwrap();
    assert!(schemas.contains(&json!("Update")), "{schemas:?}");
    // Live events, in order, from the nested stream route.
    let counts: Vec<&Value> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"]["count"])
        .take(3)
        .collect();
    assert_eq!(counts, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(seen["events"][0]["data"]["message"], "Live update");
    let stream_url = srv.url("/api/stream/updates?interval_ms=50");
    assert_eq!(
        seen["status"],
        "connected: /api/stream/updates?interval_ms=50"
    );
    assert_eq!(seen["afterDisconnect"], "disconnected");
    // "Send" on the JSON-or-stream operation: its JSON answer, shown on the page.
    assert_eq!(seen["sent"]["status"], "200 OK · application/json");
    assert_eq!(seen["sent"]["body"]["data"]["message"], "Static snapshot");
    let requests: Vec<&str> = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        requests,
        [
            srv.url("/api/docs"),
            stream_url,
            srv.url("/api/data"),
            srv.url("/api/auth/login")
        ]
    );
    // Doc comments are Markdown: backticks become code, not literal text.
    let login = seen["descriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["operationId"] == "login")
        .expect("login's description is shown");
    assert_eq!(login["code"], json!(["EventSource"]), "{login}");
    assert!(!login["text"].as_str().unwrap().contains('`'), "{login}");
    // "Try it" for POST /auth/login starts from an example of its input that the server takes.
    assert_eq!(seen["prefilled"]["body"], json!({"userId": "string"}));
    assert_eq!(seen["prefilled"]["status"], "200 OK · application/json");
    assert!(seen["prefilled"]["answer"]["token"].is_string(), "{seen}");
}
