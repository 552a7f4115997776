//! TestIssuer: an OIDC provider on an ephemeral port. Serves discovery and JWKS, mints tokens,
//! rotates keys, goes down and comes back, and counts its requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::keys::{alg_name, now, sign_raw, TestKey};

pub const AUDIENCE: &str = "api://test";

/// How the issuer answers JWKS requests.
#[derive(Clone, Debug)]
pub enum Mode {
    Up,
    /// Every request gets this status.
    Down(u16),
    /// Answers after this delay.
    Slow(Duration),
    /// Serves this body as the JWKS.
    Body(String),
    /// Answers the JWKS request with a redirect to this URL.
    Redirect(String),
}

struct State {
    issuer: String,
    published: Mutex<Vec<TestKey>>,
    mode: Mutex<Mode>,
    /// The `issuer` the discovery document claims (defaults to the real one).
    discovery_issuer: Mutex<Option<String>>,
    cache_control: Mutex<Option<String>>,
    /// Discovery's `introspection_endpoint`, when set.
    introspection_endpoint: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

pub struct TestIssuer {
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIssuer {
    /// Starts an issuer publishing `keys`.
    pub async fn start(keys: Vec<TestKey>) -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test issuer");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            issuer: format!("http://{addr}"),
            published: Mutex::new(keys),
            mode: Mutex::new(Mode::Up),
            discovery_issuer: Mutex::new(None),
            cache_control: Mutex::new(None),
            introspection_endpoint: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let task = super::serve::serve(listener, state.clone(), |state, req| async move {
            answer(&state, req).await
        });
        TestIssuer { state, task }
    }

    pub fn url(&self) -> &str {
        &self.state.issuer
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().expect("lock") = mode;
    }

    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.state.discovery_issuer.lock().expect("lock") = Some(issuer.into());
    }

    /// Discovery names `url` as the `introspection_endpoint` (RFC 8414 §2).
    pub fn set_introspection_endpoint(&self, url: &str) {
        *self.state.introspection_endpoint.lock().expect("lock") = Some(url.into());
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock().expect("lock") = Some(value.into());
    }

    pub fn publish(&self, key: TestKey) {
        self.state.published.lock().expect("lock").push(key);
    }

    pub fn unpublish(&self, kid: &str) {
        self.state
            .published
            .lock()
            .expect("lock")
            .retain(|k| k.kid != kid);
    }

    /// The claims of a good token: issuer, audience, subject, one minute either side of now.
    pub fn claims(&self) -> Value {
        let now = now();
        json!({
            "iss": self.url(),
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
            "cid": "client-1",
            "scp": ["read"],
        })
    }

    /// A good token signed by `key`.
    pub fn token(&self, key: &TestKey) -> String {
        self.token_with(key, json!({}))
    }

    /// A token whose claims are the good ones changed by `changes` (a null removes a claim).
    pub fn token_with(&self, key: &TestKey, changes: Value) -> String {
        let claims = merge(self.claims(), changes);
        sign_raw(&header(key), &claims, &key.encoding, key.alg)
    }

    /// A good token whose header is changed by `changes` (a null removes a member).
    pub fn token_with_header(&self, key: &TestKey, changes: Value) -> String {
        let header = merge(header(key), changes);
        sign_raw(&header, &self.claims(), &key.encoding, key.alg)
    }
}

pub fn header(key: &TestKey) -> Value {
    json!({"alg": alg_name(key.alg), "kid": key.kid, "typ": "JWT"})
}

pub fn merge(base: Value, changes: Value) -> Value {
    let (Value::Object(mut base), Value::Object(changes)) = (base, changes) else {
        panic!("merge takes objects");
    };
    for (k, v) in changes {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
    Value::Object(base)
}

async fn answer(state: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let respond = |status: u16, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut()
            .insert("content-type", "application/json".parse().expect("static"));
        r
    };
    match req.uri().path() {
        "/.well-known/openid-configuration" => {
            state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
            if let Mode::Down(status) = state.mode.lock().expect("lock").clone() {
                return respond(status, "down".into());
            }
            let claimed = state.discovery_issuer.lock().expect("lock").clone();
            let mut doc = json!({
                "issuer": claimed.unwrap_or_else(|| state.issuer.clone()),
                "jwks_uri": format!("{}/keys", state.issuer),
            });
            if let Some(url) = state.introspection_endpoint.lock().expect("lock").clone() {
                doc["introspection_endpoint"] = json!(url);
            }
            respond(200, doc.to_string())
        }
        "/keys" => {
            state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let mode = state.mode.lock().expect("lock").clone();
            match mode {
                Mode::Down(status) => return respond(status, "down".into()),
                Mode::Slow(delay) => tokio::time::sleep(delay).await,
                Mode::Body(body) => return respond(200, body),
                Mode::Redirect(location) => {
                    let mut r = respond(302, String::new());
                    r.headers_mut()
                        .insert("location", location.parse().expect("location"));
                    return r;
                }
                Mode::Up => {}
            }
            let keys: Vec<Value> = state
                .published
                .lock()
                .expect("lock")
                .iter()
                .map(|k| k.jwk.clone())
                .collect();
            let mut response = respond(200, json!({"keys": keys}).to_string());
            if let Some(cc) = state.cache_control.lock().expect("lock").clone() {
                response
                    .headers_mut()
                    .insert("cache-control", cc.parse().expect("header"));
            }
            response
        }
        _ => respond(404, "{}".into()),
    }
}

/// All the algorithms tokengate supports, for configs that accept every fixture key.
pub const ALL_ALGORITHMS: &str = "[RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]";
