//! CORS as a real browser sees it (issue 12): Debian's headless Chromium, driven by
//! `tests/browser/cors.mjs`, opens a page on one origin and `fetch()`es from tokengate on
//! another, in front of an upstream that sends its own CORS headers (as Express `cors()` does).
//! What the page's JavaScript could read is asserted: a fetch that rejects with a `TypeError`
//! while Chromium logs "blocked by CORS policy" is a refusal; anything else is readable.
//!
//! Needs `node`, `tests/browser/node_modules` and `/usr/bin/chromium`: `.ci/install-browser`
//! installs them. Without them every test here fails loudly; none is skipped.
//!
//! Each test collects all its checks and fails once, listing every one that did not hold.

use std::convert::Infallible;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::{issuer_config, TestIssuer, TestKey, TestProxy};

const INSTALL: &str =
    "run `bash .ci/install-browser` (Debian's chromium and `npm ci` in tests/browser)";

// ---------------------------------------------------------------------------------------------
// The parts: an upstream with its own CORS, a page on another origin, the browser.

/// The CORS policy the upstream applies itself, whatever tokengate does.
#[derive(Clone, Copy, Debug)]
enum UpstreamCors {
    /// `cors({ origin: true, credentials: true })`: the request's `Origin` reflected, with
    /// `Access-Control-Allow-Credentials: true`.
    ReflectWithCredentials,
    /// `Access-Control-Allow-Origin: *` together with `Access-Control-Allow-Credentials: true`
    /// (a pair browsers refuse for credentialed requests).
    StarWithCredentials,
}

/// A service that answers every request, `OPTIONS` included, with 200 JSON and its own CORS
/// headers, and records the method, path and headers of what reached it.
struct CorsUpstream {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CorsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CorsUpstream {
    async fn start(policy: UpstreamCors) -> CorsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        let task = serve(listener, move |req| upstream_answer(policy, &recorder, req));
        CorsUpstream { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request that reached the upstream: `{method, path, headers: {name: value}}`.
    fn seen(&self) -> Vec<Value> {
        self.seen.lock().expect("lock").clone()
    }
}

fn upstream_answer(
    policy: UpstreamCors,
    recorder: &Mutex<Vec<Value>>,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let h = req.headers();
    let headers: serde_json::Map<String, Value> = h
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let record = json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "headers": headers,
    });
    recorder.lock().expect("lock").push(record.clone());
    let body = json!({
        "from": "upstream",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "authorization": h.contains_key("authorization"),
    });
    let mut response = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    match policy {
        UpstreamCors::ReflectWithCredentials => {
            if let Some(origin) = h.get("origin") {
                response = response
                    .header("access-control-allow-origin", origin)
                    .header("vary", "Origin");
            }
        }
        UpstreamCors::StarWithCredentials => {
            response = response.header("access-control-allow-origin", "*");
        }
    }
    response = response.header("access-control-allow-credentials", "true");
    if req.method() == hyper::Method::OPTIONS {
        response = response.header(
            "access-control-allow-methods",
            "GET,HEAD,PUT,PATCH,POST,DELETE",
        );
        if let Some(asked) = h.get("access-control-request-headers") {
            response = response.header("access-control-allow-headers", asked);
        }
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// Serves a blank HTML page on every path: the origin the fetches come from.
struct PageServer {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PageServer {
    async fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind page");
        let addr = listener.local_addr().expect("addr");
        let task = serve(listener, |_req| {
            Response::builder()
                .status(200)
                .header("content-type", "text/html; charset=utf-8")
                .body(Full::new(Bytes::from_static(
                    b"<!doctype html><html><head><title>tokengate CORS test page</title></head><body></body></html>",
                )))
                .expect("response")
        });
        PageServer { addr, task }
    }

    /// The page's origin (and its URL, with `/`).
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Accepts connections on `listener` and answers each request with `answer`.
fn serve<F>(listener: TcpListener, answer: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(&Request<hyper::body::Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(answer(&req)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// One `fetch()` for the page to run.
struct Fetch {
    url: String,
    headers: Vec<(&'static str, String)>,
    credentials: bool,
}

impl Fetch {
    fn get(url: String) -> Fetch {
        Fetch {
            url,
            headers: Vec::new(),
            credentials: false,
        }
    }

    fn bearer(mut self, token: &str) -> Fetch {
        self.headers
            .push(("Authorization", format!("Bearer {token}")));
        self
    }

    /// `credentials: "include"`.
    fn with_credentials(mut self) -> Fetch {
        self.credentials = true;
        self
    }

    fn plan(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        json!({
            "url": self.url,
            "method": "GET",
            "headers": headers,
            "credentials": if self.credentials { "include" } else { "omit" },
        })
    }
}

/// What the page's JavaScript got from one fetch (a line of `cors.mjs`'s output).
struct Seen(Value);

impl Seen {
    fn resolved(&self) -> bool {
        self.0["resolved"] == json!(true)
    }

    fn status(&self) -> Option<u64> {
        self.0["status"].as_u64()
    }

    /// The body as JSON (Null when it is not).
    fn body(&self) -> Value {
        self.0["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }

    /// A response header the page could read (`response.headers`), by lower-case name.
    fn header(&self, name: &str) -> Option<&str> {
        self.0["headers"][name].as_str()
    }

    /// A rejection Chromium attributes to CORS (not a connection failure or a timeout).
    fn blocked_by_cors(&self) -> bool {
        !self.resolved()
            && self.0["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("TypeError"))
            && self.0["console"].as_array().is_some_and(|lines| {
                lines.iter().any(|l| {
                    l.as_str()
                        .is_some_and(|l| l.contains("blocked by CORS policy"))
                })
            })
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Opens `page` in headless Chromium and runs `fetches` in it, one after the other.
async fn browse(page: &str, fetches: &[Fetch]) -> Vec<Seen> {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("{root}/tests/browser/cors.mjs");
    let plan = json!({
        "page": format!("{page}/"),
        "timeout_ms": 10_000,
        "fetches": fetches.iter().map(Fetch::plan).collect::<Vec<_>>(),
    })
    .to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("node")
            .arg(&script)
            .arg("-")
            .current_dir(format!("{root}/tests/browser"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("BROWSER TESTS CANNOT RUN: `node` did not start ({e}): {INSTALL}")
            });
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(plan.as_bytes())
            .expect("writing the plan to cors.mjs");
        child.wait_with_output().expect("waiting for cors.mjs")
    })
    .await
    .expect("the browser task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        // cors.mjs names .ci/install-browser itself.
        Some(2 | 3) => panic!("BROWSER TESTS CANNOT RUN: {}", stderr.trim()),
        other => {
            panic!("tests/browser/cors.mjs failed (exit {other:?}):\n{stderr}\nstdout:\n{stdout}")
        }
    }
    let seen: Vec<Seen> = stdout
        .lines()
        .map(|l| {
            Seen(serde_json::from_str(l).unwrap_or_else(|e| panic!("cors.mjs printed {l:?}: {e}")))
        })
        .collect();
    assert_eq!(
        seen.len(),
        fetches.len(),
        "cors.mjs reported {} fetches for {} planned:\n{stdout}",
        seen.len(),
        fetches.len()
    );
    seen
}

/// Every check of one test; the test fails once at the end, listing all that did not hold.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, holds: bool, what: &str, seen: &dyn std::fmt::Display) {
        if !holds {
            self.0.push(format!("- {what}\n    got: {seen}"));
        }
    }

    /// The page could read the answer, with this status and a body from the upstream.
    fn readable(&mut self, seen: &Seen, status: u64, what: &str) {
        self.check(
            seen.resolved() && seen.status() == Some(status),
            &format!("{what}: the page should read a {status}"),
            seen,
        );
    }

    /// The browser refused the page the answer, for CORS.
    fn refused(&mut self, seen: &Seen, what: &str) {
        self.check(
            seen.blocked_by_cors(),
            &format!("{what}: the browser should refuse the page the answer (CORS)"),
            seen,
        );
    }

    fn upstream_body(&mut self, seen: &Seen, path: &str, authorization: bool, what: &str) {
        let body = seen.body();
        self.check(
            body["from"] == "upstream"
                && body["path"] == path
                && body["authorization"] == json!(authorization),
            &format!("{what}: the page should read the upstream's body for {path}"),
            seen,
        );
    }

    fn done(self, scenario: &str) {
        assert!(
            self.0.is_empty(),
            "{scenario}: {} check(s) failed:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

struct Setup {
    issuer: TestIssuer,
    key: TestKey,
    upstream: CorsUpstream,
    page: PageServer,
    proxy: TestProxy,
}

impl Setup {
    /// An issuer, the upstream, the page server and tokengate with `/public/**` open and every
    /// other path needing a token; `cors` is the `cors:` value, given the page's origin.
    async fn start(policy: UpstreamCors, cors: impl FnOnce(&str) -> String) -> Setup {
        let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
        let issuer = TestIssuer::start(vec![key.clone()]).await;
        let upstream = CorsUpstream::start(policy).await;
        let page = PageServer::start().await;
        let yaml = format!(
            "{}upstream: {{ url: {} }}\nroutes:\n  - {{ path: /public/**, auth: none }}\n\
             default: {{ auth: required }}\ncors: {}\n",
            issuer_config(&issuer, ""),
            upstream.url(),
            cors(&page.origin()),
        );
        let proxy = TestProxy::start(&yaml).await;
        proxy.wait_ready().await;
        Setup {
            issuer,
            key,
            upstream,
            page,
            proxy,
        }
    }

    async fn browse(&self, fetches: &[Fetch]) -> Vec<Seen> {
        browse(&self.page.origin(), fetches).await
    }

    fn token(&self) -> String {
        self.issuer.token(&self.key)
    }

    /// The CORS headers of tokengate's answer to a GET of `path` from the page's origin, as
    /// they are on the wire (`name: value` lines, every value of every `access-control-*`).
    async fn wire_cors_headers(&self, path: &str, token: Option<&str>) -> Vec<String> {
        let mut request = reqwest::Client::new()
            .get(self.proxy.url(path))
            .header("origin", self.page.origin());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        response
            .headers()
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("access-control-"))
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect()
    }
}

struct Lines(Vec<String>);

impl std::fmt::Display for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// A: the page's origin is listed; the upstream reflects any origin with credentials.
#[tokio::test]
async fn a_listed_origin_reads_what_tokengate_allows_and_no_more() {
    let s = Setup::start(UpstreamCors::ReflectWithCredentials, |page| {
        format!("{{ allow_origins: [\"{page}\"], allow_credentials: false }}")
    })
    .await;
    let token = s.token();
    let seen = s
        .browse(&[
            Fetch::get(s.proxy.url("/public/x")),
            Fetch::get(s.proxy.url("/api/x")).bearer(&token),
            Fetch::get(s.proxy.url("/api/x")),
            Fetch::get(s.proxy.url("/public/x")).with_credentials(),
        ])
        .await;
    let mut c = Checks::default();

    c.readable(&seen[0], 200, "A1 GET /public/x, no credentials");
    c.upstream_body(&seen[0], "/public/x", false, "A1");
    // The browser does not show Access-Control-Allow-Origin to the page: look at the wire.
    let wire = Lines(s.wire_cors_headers("/public/x", None).await);
    c.check(
        wire.0
            .iter()
            .filter(|l| l.starts_with("access-control-allow-origin:"))
            .eq([&format!("access-control-allow-origin: {}", s.page.origin())]),
        "A1 on the wire: exactly one Access-Control-Allow-Origin, tokengate's (the page's origin)",
        &wire,
    );

    c.readable(
        &seen[1],
        200,
        "A2 GET /api/x with a valid token (preflighted)",
    );
    c.upstream_body(&seen[1], "/api/x", true, "A2");
    let preflights: Vec<Value> = s
        .upstream
        .seen()
        .into_iter()
        .filter(|r| r["method"] == "OPTIONS")
        .collect();
    c.check(
        preflights.is_empty(),
        "A2: tokengate answers the preflight itself; none reaches the upstream",
        &json!(preflights),
    );

    c.readable(&seen[2], 401, "A3 GET /api/x without a token");
    c.check(
        seen[2]
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "A3: the page reads WWW-Authenticate on the 401 (exposed by default)",
        &seen[2],
    );
    c.check(
        seen[2]
            .header("x-request-id")
            .is_some_and(|v| !v.is_empty()),
        "A3: the page reads X-Request-Id on the 401 (exposed by default)",
        &seen[2],
    );

    c.refused(
        &seen[3],
        "A4 GET /public/x with credentials: \"include\", allow_credentials: false \
         (the upstream's Access-Control-Allow-Credentials: true must not reach the browser)",
    );

    c.done("A (listed origin)");
}

/// B: the page's origin is not listed; the upstream reflects any origin with credentials.
#[tokio::test]
async fn b_an_unlisted_origin_reads_nothing_even_where_the_upstream_allows_it() {
    let s = Setup::start(UpstreamCors::ReflectWithCredentials, |_page| {
        "{ allow_origins: [\"http://127.0.0.1:1\"] }".to_owned()
    })
    .await;
    let token = s.token();
    let seen = s
        .browse(&[
            Fetch::get(s.proxy.url("/public/x")),
            Fetch::get(s.proxy.url("/public/x")).with_credentials(),
            Fetch::get(s.proxy.url("/api/x")).bearer(&token),
        ])
        .await;
    let mut c = Checks::default();
    c.refused(
        &seen[0],
        "B1 GET /public/x from an unlisted origin, no credentials \
         (the upstream's reflected Access-Control-Allow-Origin must not reach the browser)",
    );
    c.refused(
        &seen[1],
        "B2 GET /public/x from an unlisted origin, credentials: \"include\"",
    );
    c.refused(
        &seen[2],
        "B3 GET /api/x with a token from an unlisted origin (tokengate's preflight allows nothing)",
    );
    c.done("B (unlisted origin)");
}

/// C: `allow_origins: ["*"]`; the upstream sends `*` with `Allow-Credentials: true`.
#[tokio::test]
async fn c_any_origin_never_goes_with_credentials() {
    let s = Setup::start(UpstreamCors::StarWithCredentials, |_page| {
        "{ allow_origins: [\"*\"] }".to_owned()
    })
    .await;
    let token = s.token();
    let seen = s
        .browse(&[
            Fetch::get(s.proxy.url("/public/x")),
            Fetch::get(s.proxy.url("/public/x")).with_credentials(),
            Fetch::get(s.proxy.url("/api/x")).bearer(&token),
        ])
        .await;
    let mut c = Checks::default();
    c.readable(&seen[0], 200, "C1 GET /public/x, no credentials");
    c.upstream_body(&seen[0], "/public/x", false, "C1");
    c.refused(
        &seen[1],
        "C2 GET /public/x with credentials: \"include\" (`*` never goes with credentials)",
    );
    c.readable(
        &seen[2],
        200,
        "C3 GET /api/x with a valid token (preflighted)",
    );
    c.upstream_body(&seen[2], "/api/x", true, "C3");
    // The browser refuses C2 because of `*` alone, so the page cannot tell whether the
    // upstream's Allow-Credentials reached it: look at the wire.
    let wire = Lines(s.wire_cors_headers("/public/x", None).await);
    c.check(
        wire.0.iter().any(|l| l == "access-control-allow-origin: *")
            && !wire
                .0
                .iter()
                .any(|l| l.starts_with("access-control-allow-credentials:")),
        "C on the wire: `Access-Control-Allow-Origin: *` and no Access-Control-Allow-Credentials \
         (tokengate removes the upstream's)",
        &wire,
    );
    c.done("C (any origin)");
}

/// D: `cors: { mode: upstream }`: the upstream's CORS policy applies, preflights included.
#[tokio::test]
async fn d_mode_upstream_hands_cors_to_the_upstream() {
    let s = Setup::start(UpstreamCors::ReflectWithCredentials, |_page| {
        "{ mode: upstream }".to_owned()
    })
    .await;
    let token = s.token();
    let seen = s
        .browse(&[
            Fetch::get(s.proxy.url("/api/x")).bearer(&token),
            Fetch::get(s.proxy.url("/public/x")).with_credentials(),
        ])
        .await;
    let mut c = Checks::default();
    c.readable(
        &seen[0],
        200,
        "D1 GET /api/x with a valid token (the upstream allows the preflight)",
    );
    c.upstream_body(&seen[0], "/api/x", true, "D1");
    let preflights: Vec<Value> = s
        .upstream
        .seen()
        .into_iter()
        .filter(|r| r["method"] == "OPTIONS")
        .collect();
    c.check(
        preflights.len() == 1
            && preflights[0]["path"] == "/api/x"
            && preflights[0]["headers"]["authorization"].is_null()
            && preflights[0]["headers"]["x-auth-subject"].is_null(),
        "D1: the preflight reached the upstream once, without a token or identity headers",
        &json!(preflights),
    );
    c.readable(
        &seen[1],
        200,
        "D2 GET /public/x with credentials: \"include\" (the upstream allows it)",
    );
    c.upstream_body(&seen[1], "/public/x", false, "D2");
    c.done("D (mode: upstream)");
}
