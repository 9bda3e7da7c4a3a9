//! Sessions, auth, permissions and hub-fed streams: the seed's user-notification example.

use std::sync::Arc;
use std::time::Duration;

use pikku::EventHub;
use serde_json::{Value, json};

use crate::demo;
use crate::support::*;

struct Demo {
    srv: TestServer,
    hub: Arc<dyn EventHub>,
}

async fn demo_server() -> Demo {
    let services = demo::Services::from_env().await.unwrap();
    let hub = services.hub.clone();
    Demo {
        srv: TestServer::pikku(demo::app_with(services)).await,
        hub,
    }
}

async fn login(srv: &TestServer, user: &str) -> (String, String) {
    let res = client()
        .post(srv.url("/auth/login"))
        .json(&json!({"userId": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    (body["token"].as_str().unwrap().to_string(), cookie)
}

async fn open_stream(
    srv: &TestServer,
    user: &str,
    token: &str,
    last_id: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .get(srv.url(&format!("/users/{user}/notifications")))
        .bearer_auth(token);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

async fn notify(srv: &TestServer, token: &str, user: &str, message: &str) -> String {
    let res = client()
        .post(srv.url(&format!("/users/{user}/notifications")))
        .bearer_auth(token)
        .json(&json!({"type": "info", "message": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn login_sets_a_token_and_an_http_only_cookie() {
    let d = demo_server().await;
    let (token, cookie) = login(&d.srv, "alice").await;
    assert!(token.split('.').count() == 3, "a JWT");
    assert!(cookie.starts_with("pikku_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let res = client()
        .post(d.srv.url("/auth/login"))
        .json(&json!({"userId": "../bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn no_forged_or_garbled_session_is_401_and_never_runs_the_function() {
    let d = demo_server().await;
    let url = d.srv.url("/users/alice/notifications");
    assert_eq!(get(&url).await.status(), 401);
    // Signed with another secret.
    let other =
        pikku::session::JwtSessions::<demo::UserSession>::new(b"not-the-server-secret-0123456789");
    let forged = other
        .issue(&demo::UserSession {
            user_id: "alice".into(),
        })
        .unwrap();
    for token in [forged.as_str(), "garbage", "a.b.c"] {
        let res = client().get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 401, "{token}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    let res = client()
        .get(&url)
        .header("cookie", "pikku_session=garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client()
        .post(d.srv.url("/users/alice/notifications"))
        .json(&json!({"type": "x", "message": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(d.hub.live_subscriptions(), 0, "the function never ran");
}

#[tokio::test]
async fn another_users_stream_is_403() {
    let d = demo_server().await;
    let (alice, _) = login(&d.srv, "alice").await;
    let res = open_stream(&d.srv, "bob", &alice, None).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert!(body["message"].as_str().unwrap().contains("is_self"));
    assert_eq!(d.hub.live_subscriptions(), 0, "refused before subscribing");
}

#[tokio::test]
async fn a_notification_posted_by_one_client_arrives_on_anothers_stream() {
    let d = demo_server().await;
    let (alice, alice_cookie) = login(&d.srv, "alice").await;
    // Alice's phone (a bearer token) notifies her browser tab (the cookie): the demo lets users
    // publish only to themselves.
    let (alice_phone, _) = login(&d.srv, "alice").await;
    // Alice opens her stream with the cookie, as a browser's EventSource does.
    let cookie = alice_cookie.split(';').next().unwrap().to_string();
    let res = client()
        .get(d.srv.url("/users/alice/notifications"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(eventually(Duration::from_secs(2), || d.hub.live_subscriptions() == 1).await);
    let mut ev = events(res);
    let id = notify(&d.srv, &alice_phone, "alice", "hello from my phone").await;
    let e = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(e.id, id);
    assert_eq!(
        json(&e),
        json!({"type": "info", "message": "hello from my phone", "from": "alice"})
    );
    let _ = alice;
}

#[tokio::test]
async fn reconnect_with_last_event_id_gets_exactly_the_missed_events_and_cleanup_is_complete() {
    let d = demo_server().await;
    let (alice, _) = login(&d.srv, "alice").await;
    let (bob, _) = login(&d.srv, "alice").await; // alice's other device publishes
    let mut ev = events(open_stream(&d.srv, "alice", &alice, None).await);
    assert!(eventually(Duration::from_secs(2), || d.hub.live_subscriptions() == 1).await);
    notify(&d.srv, &bob, "alice", "before").await;
    let last = next_event(&mut ev, 5).await.unwrap();
    drop(ev);
    assert!(
        eventually(Duration::from_secs(1), || d.hub.live_subscriptions() == 0).await,
        "the subscription ends when the client goes away"
    );
    let mut sent = Vec::new();
    for i in 1..=3 {
        sent.push(notify(&d.srv, &bob, "alice", &format!("missed {i}")).await);
    }
    let mut ev = events(open_stream(&d.srv, "alice", &alice, Some(&last.id)).await);
    for (i, id) in sent.iter().enumerate() {
        let e = next_event(&mut ev, 5).await.unwrap();
        assert_eq!(&e.id, id);
        assert_eq!(json(&e)["message"], format!("missed {}", i + 1));
    }
    // Then live, with nothing replayed twice.
    let live = notify(&d.srv, &bob, "alice", "live").await;
    let e = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(
        (e.id.as_str(), json(&e)["message"].as_str().unwrap()),
        (live.as_str(), "live")
    );
    drop(ev);
    assert!(eventually(Duration::from_secs(1), || d.hub.live_subscriptions() == 0).await);
}

#[tokio::test]
async fn unknown_resume_point_is_said_not_skipped() {
    let d = demo_server().await;
    let (alice, _) = login(&d.srv, "alice").await;
    notify(&d.srv, &alice, "alice", "kept").await;
    let mut ev = events(open_stream(&d.srv, "alice", &alice, Some("from-another-topic")).await);
    let gap = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(gap.event, "gap");
    assert_eq!(json(&gap)["reason"], "unknown_id");
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap())["message"],
        "kept"
    );
}

/// 200 SSE clients over HTTP; every one gets every event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_http_subscribers_get_every_event_once() {
    const CLIENTS: usize = 200;
    const EVENTS: usize = 200;
    // 200 streams of one user: above the demo's per-session cap, so without the caps.
    let services = demo::Services::from_env().await.unwrap();
    let hub = services.hub.clone();
    let d = Demo {
        srv: TestServer::pikku(demo::app_with(services).limits(pikku::Limits::default())).await,
        hub,
    };
    let (alice, _) = login(&d.srv, "alice").await;
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let mut ev = events(open_stream(&d.srv, "alice", &alice, None).await);
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(EVENTS);
            while got.len() < EVENTS {
                got.push(
                    next_event(&mut ev, 20)
                        .await
                        .unwrap()
                        .id
                        .rsplit_once('-')
                        .and_then(|(_, offset)| offset.parse::<u64>().ok())
                        .unwrap(),
                );
            }
            got
        }));
    }
    assert!(
        eventually(Duration::from_secs(5), || d.hub.live_subscriptions()
            == CLIENTS)
        .await
    );
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let hub = d.hub.clone();
            tokio::spawn(async move {
                for i in 0..EVENTS / 4 {
                    pikku::EventHubExt::publish(
                        &hub,
                        "user:alice:notifications",
                        &json!({"type": "n", "message": i.to_string()}),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for r in readers {
        let got = r.await.unwrap();
        assert_eq!(got, (1..=EVENTS as u64).collect::<Vec<_>>());
    }
    assert!(eventually(Duration::from_secs(2), || d.hub.live_subscriptions() == 0).await);
}

/// Permissions on a JSON function (the demo's guarded route is a stream): a refusal is a 403
/// before the function runs, and an allowed call answers normally.
mod guarded_json {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pikku::prelude::*;
    use pikku::session::JwtSessions;
    use serde_json::{Value, json};

    use crate::support::*;

    pub struct Services {
        ran: Arc<AtomicUsize>,
    }

    #[derive(Clone, Serialize, Deserialize)]
    pub struct Session {
        user: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NoteIn {
        user_id: String,
        text: String,
    }

    #[derive(Serialize, JsonSchema)]
    pub struct NoteOut {
        saved: String,
    }

    async fn is_owner(_s: &Services, input: &NoteIn, session: &Session) -> bool {
        input.user_id == session.user
    }

    #[pikku_func(route = "/g/users/{userId}/notes", method = "post", permissions = [is_owner])]
    async fn save_note(s: &Services, input: NoteIn, _session: &Session) -> NoteOut {
        s.ran.fetch_add(1, Ordering::SeqCst);
        NoteOut { saved: input.text }
    }

    #[tokio::test]
    async fn a_json_function_refused_by_a_permission_is_403_and_never_runs() {
        const SECRET: &[u8] = b"guarded-json-test-secret-0123456789";
        let sessions = JwtSessions::<Session>::new(SECRET);
        let alice = sessions
            .issue(&Session {
                user: "alice".into(),
            })
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let app = pikku::Pikku::new(Services { ran: ran.clone() })
            .sessions(JwtSessions::<Session>::new(SECRET));
        let srv = TestServer::pikku(app).await;
        let post = |token: &str| {
            client()
                .post(srv.url("/g/users/bob/notes"))
                .bearer_auth(token)
                .json(&json!({"text": "hi"}))
                .send()
        };
        let res = post(&alice).await.unwrap();
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
        assert!(
            body["message"].as_str().unwrap_or("").contains("is_owner"),
            "names the check: {body}"
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "refused before the function ran"
        );
        let ok = client()
            .post(srv.url("/g/users/alice/notes"))
            .bearer_auth(&alice)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.json::<Value>().await.unwrap(), json!({"saved": "hi"}));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
