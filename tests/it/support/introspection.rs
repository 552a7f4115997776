//! TestIntrospection: an RFC 7662 introspection endpoint on an ephemeral port, answering
//! each token as the test says (JSON, a signed RFC 9701 JWT, an error status, slowly or not
//! at all), counting calls per token and recording every request it received.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::keys::{alg_name, now, sign_raw, TestKey};

/// How the endpoint answers one token.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// This status, an empty JSON object as body.
    Status(u16),
    /// 200 with this body, as JSON.
    Raw(String),
    /// 200 with a JWT of these header changes and claims, signed by this key
    /// (`application/token-introspection+jwt`).
    Jwt {
        header: Value,
        claims: Value,
        key: TestKey,
    },
    /// Waits this long, then answers as the inner reply.
    Slow(Duration, Box<Reply>),
}

/// One request the endpoint received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// The form body, decoded.
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    replies: Mutex<HashMap<String, Reply>>,
    calls: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

pub struct TestIntrospection {
    state: Arc<State>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIntrospection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIntrospection {
    /// Starts an endpoint that says `{"active": false}` about every token it was not told of.
    pub async fn start() -> TestIntrospection {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind introspection endpoint");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let task = super::serve::serve(listener, state.clone(), |state, req| async move {
            answer(&state, req).await
        });
        TestIntrospection { state, addr, task }
    }

    /// The endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    /// Answer `token` with `reply` from now on.
    pub fn reply(&self, token: &str, reply: Reply) {
        self.state
            .replies
            .lock()
            .expect("lock")
            .insert(token.to_owned(), reply);
    }

    /// Calls made about `token` so far.
    pub fn calls(&self, token: &str) -> usize {
        *self
            .state
            .calls
            .lock()
            .expect("lock")
            .get(token)
            .unwrap_or(&0)
    }

    /// Calls made so far, about any token.
    pub fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// The last request received (panics if none).
    pub fn last(&self) -> Seen {
        self.state
            .seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the introspection endpoint received a request")
    }
}

/// An active answer for `issuer`: `sub` alice, scope `read`, `aud` `audience`, five minutes left.
pub fn active(issuer: &str, audience: &str) -> Value {
    json!({
        "active": true,
        "iss": issuer,
        "sub": "alice",
        "scope": "read",
        "aud": audience,
        "client_id": "client-1",
        "token_type": "Bearer",
        "iat": now(),
        "exp": now() + 300,
    })
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", content_type.parse().expect("static"));
    r
}

async fn answer(state: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (authorization, accept, content_type) = (
        header("authorization"),
        header("accept"),
        header("content-type"),
    );
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return respond(400, "application/json", "{}".into()),
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let token = form.get("token").cloned().unwrap_or_default();
    state.total.fetch_add(1, Ordering::SeqCst);
    *state
        .calls
        .lock()
        .expect("lock")
        .entry(token.clone())
        .or_default() += 1;
    state.seen.lock().expect("lock").push(Seen {
        authorization,
        accept,
        content_type,
        form,
    });
    let reply = state
        .replies
        .lock()
        .expect("lock")
        .get(&token)
        .cloned()
        .unwrap_or(Reply::Json(json!({"active": false})));
    render(reply).await
}

async fn render(mut reply: Reply) -> Response<Full<Bytes>> {
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Json(v) => respond(200, "application/json", v.to_string()),
        Reply::Status(s) => respond(s, "application/json", "{}".into()),
        Reply::Raw(body) => respond(200, "application/json", body),
        Reply::Jwt {
            header,
            claims,
            key,
        } => {
            let mut h =
                json!({"alg": alg_name(key.alg), "kid": key.kid, "typ": "token-introspection+jwt"});
            if let (Some(h), Value::Object(changes)) = (h.as_object_mut(), header) {
                for (k, v) in changes {
                    if v.is_null() {
                        h.remove(&k);
                    } else {
                        h.insert(k, v);
                    }
                }
            }
            respond(
                200,
                "application/token-introspection+jwt",
                sign_raw(&h, &claims, &key.encoding, key.alg),
            )
        }
        Reply::Slow(..) => respond(500, "application/json", "{}".into()),
    }
}
