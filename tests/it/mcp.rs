//! tokengate in front of an MCP server (issue 21): a protected resource per the MCP
//! authorization spec (RFC 9728 metadata, challenges naming it and the route's scope,
//! audience-bound tokens, no token passthrough) and Streamable HTTP through the proxy.
//!
//! The `mcp_sdk_*` tests drive real parts: the official Python SDK's MCP server
//! (`tests/peers/mcp/server.py`), oidc-provider issuing JWT access tokens for the MCP
//! resource by resource indicator (`MCP_RESOURCE`), and the official TypeScript SDK client
//! (`tests/peers/mcp/client.mjs`) discovering everything from tokengate's 401. The others use
//! the test issuer and scripted upstreams, to pin exact bytes and timings.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::issuer::{ALL_ALGORITHMS, AUDIENCE};
use crate::support::mcp::{self, McpServer};
use crate::support::oidc_provider::{OidcProvider, Peer};
use crate::support::upstream::EchoUpstream;
use crate::support::{read, TestIssuer, TestKey, TestProxy};

/// The identifier of the MCP resource in the tests that do not need a real host.
const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// The `algs` of the DPoP challenge every route that accepts DPoP (the default) adds.
const DPOP_ALGS: &str = "ES256 EdDSA PS256 RS256";

/// The MCP client's credentials at oidc-provider (see `server.mjs`).
const MCP_CLIENT: &str = "mcp-client";
const MCP_CLIENT_SECRET: &str = "mcp-client-secret";

/// The test issuer accepting both the test audience and the MCP resource, an upstream, and
/// an MCP resource covering `/mcp` (scopes `mcp:tools`, and one of `mcp:read`,
/// `mcp:write`) beside an ordinary `/api/**`; `extra` is appended.
fn resource_yaml(issuer: &TestIssuer, upstream: &str, extra: &str) -> String {
    format!(
        "issuers:
  - issuer: {issuer}
    audiences: [{AUDIENCE}, \"{RESOURCE}\"]
    algorithms: {ALL_ALGORITHMS}
    allow_http: true
upstream: {{ url: {upstream} }}
routes:
  - {{ path: /mcp, scopes: [mcp:tools], any_scopes: [mcp:read, mcp:write] }}
  - {{ path: /api/** }}
resources:
  - id: \"{RESOURCE}\"
    routes: [/mcp]
    authorization_servers: [\"https://idp.example.com\"]
    scopes_supported: [mcp:tools, mcp:read, mcp:write]
    resource_name: Example MCP server
    resource_documentation: https://docs.example.com/mcp
    audiences: [\"{RESOURCE}\"]
    mcp: true
    metadata_at_root: true
{extra}",
        issuer = issuer.url(),
    )
}

/// The test issuer, an echo upstream and the proxy of [`resource_yaml`].
async fn resource_stack(extra: &str) -> (TestIssuer, TestKey, EchoUpstream, TestProxy) {
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let echo = EchoUpstream::start().await;
    let proxy = TestProxy::start(&resource_yaml(&issuer, &echo.url(), extra)).await;
    proxy.wait_ready().await;
    (issuer, key, echo, proxy)
}

/// RFC 9728 §2 and §3.2, member by member, at the path-inserted URL and at the root.
#[tokio::test]
async fn mcp_metadata_member_by_member_rfc9728() {
    let (issuer, key, echo, proxy) = resource_stack("").await;
    let before = echo.count();
    let http = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let token = issuer.token(&key);
        for auth in [None, Some("garbage"), Some(token.as_str())] {
            let mut request = http.get(proxy.url(path));
            if let Some(t) = auth {
                request = request.bearer_auth(t);
            }
            let r = request.send().await.expect("metadata");
            assert_eq!(r.status(), 200, "{path}");
            // §3.2: a JSON object, application/json.
            assert_eq!(
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/json"),
                "{path}"
            );
            let text = r.text().await.expect("body");
            let doc: Value = serde_json::from_str(&text).expect("one JSON object");
            let members = doc.as_object().expect("an object");
            // §3.3: `resource` is the identifier the URL was built from, byte for byte.
            assert!(text.contains("\"resource\":\"https://mcp.example.com/mcp\""));
            assert_eq!(members["resource"], RESOURCE);
            // §2: authorization_servers, an array of issuer identifiers.
            assert_eq!(
                members["authorization_servers"],
                json!(["https://idp.example.com"])
            );
            // §2: scopes_supported (RECOMMENDED), an array of scope values.
            assert_eq!(
                members["scopes_supported"],
                json!(["mcp:tools", "mcp:read", "mcp:write"])
            );
            // §2: bearer_methods_supported: only the header; the query is refused, the body
            // never read.
            assert_eq!(members["bearer_methods_supported"], json!(["header"]));
            // §2: human-readable name and documentation.
            assert_eq!(members["resource_name"], "Example MCP server");
            assert_eq!(
                members["resource_documentation"],
                "https://docs.example.com/mcp"
            );
            // §2 (RFC 9449 §5.1): the route takes DPoP-bound tokens (dpop: allowed, the
            // default) without requiring them; no client certificates are seen, so
            // tls_client_certificate_bound_access_tokens is left out (false).
            assert_eq!(
                members["dpop_signing_alg_values_supported"],
                json!(["ES256", "EdDSA", "PS256", "RS256"])
            );
            assert_eq!(members["dpop_bound_access_tokens_required"], json!(false));
            // Nothing else, and nothing empty or null (§2: members with no value are omitted).
            let mut names: Vec<&str> = members.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(
                names,
                [
                    "authorization_servers",
                    "bearer_methods_supported",
                    "dpop_bound_access_tokens_required",
                    "dpop_signing_alg_values_supported",
                    "resource",
                    "resource_documentation",
                    "resource_name",
                    "scopes_supported"
                ]
            );
        }
        let head = http.head(proxy.url(path)).send().await.expect("HEAD");
        assert_eq!(head.status(), 200);
        let post = http.post(proxy.url(path)).send().await.expect("POST");
        assert_eq!(post.status(), 405);
        assert_eq!(
            post.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some("GET, HEAD")
        );
    }
    // Own endpoints, never forwarded.
    assert_eq!(echo.count(), before);
}

/// RFC 8707 §2 / MCP: a token issued for another resource is refused on the MCP route even
/// though its issuer accepts that audience elsewhere; 401 with the route's scope and the
/// metadata, nothing forwarded.
#[tokio::test]
async fn mcp_a_token_for_another_audience_is_401() {
    let (issuer, key, echo, proxy) = resource_stack("").await;
    let scopes = json!(["mcp:tools", "mcp:read"]);
    let other = issuer.token_with(&key, json!({ "aud": AUDIENCE, "scp": scopes }));
    let before = echo.count();
    let (status, challenge, body) = read(proxy.get_with("/mcp", &other).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(
            format!(
                "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the token is not meant for this audience\", scope=\"mcp:tools mcp:read mcp:write\", resource_metadata=\"{METADATA_URL}\""
            )
            .as_str()
        )
    );
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(echo.count(), before, "nothing forwarded");
    // The same token is good where its audience is the one asked for.
    assert_eq!(proxy.get_with("/api/x", &other).await.status(), 200);
    // A token for the MCP resource passes, and one among several audiences too.
    for aud in [json!(RESOURCE), json!([AUDIENCE, RESOURCE])] {
        let mine = issuer.token_with(&key, json!({ "aud": aud, "scp": scopes }));
        assert_eq!(proxy.get_with("/mcp", &mine).await.status(), 200, "{aud}");
    }
    // No token: the bare challenge with the scope and the metadata.
    let (status, challenge, _) = read(reqwest::get(proxy.url("/mcp")).await.expect("get")).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(
            format!(
                "Bearer realm=\"tokengate\", scope=\"mcp:tools mcp:read mcp:write\", resource_metadata=\"{METADATA_URL}\""
            )
            .as_str()
        )
    );
}

/// MCP: a runtime scope shortfall is 403 `insufficient_scope` naming every scope the route
/// needs (not only the missing one) and the metadata.
#[tokio::test]
async fn mcp_insufficient_scope_names_every_scope_and_the_metadata() {
    let (issuer, key, echo, proxy) = resource_stack("").await;
    let before = echo.count();
    for held in [json!([]), json!(["mcp:tools"]), json!(["mcp:read"])] {
        let token = issuer.token_with(&key, json!({ "aud": RESOURCE, "scp": held }));
        let (status, challenge, body) = read(proxy.get_with("/mcp", &token).await).await;
        assert_eq!(status, 403, "{held}");
        assert_eq!(
            challenge.as_deref(),
            Some(
                format!(
                    "Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"mcp:tools mcp:read mcp:write\", resource_metadata=\"{METADATA_URL}\""
                )
                .as_str()
            ),
            "{held}"
        );
        assert_eq!(body["error"], "insufficient_scope");
    }
    assert_eq!(echo.count(), before, "nothing forwarded");
}

/// MCP forbids token passthrough: on an MCP resource's routes `Authorization` is removed
/// (identity headers go instead) unless `forward.strip_authorization` is written; other
/// routes keep the global behaviour.
#[tokio::test]
async fn mcp_the_token_is_not_passed_through_unless_forward_says_so() {
    let (issuer, key, echo, proxy) = resource_stack("").await;
    let token = issuer.token_with(
        &key,
        json!({ "aud": [AUDIENCE, RESOURCE], "scp": ["mcp:tools", "mcp:write"] }),
    );
    assert_eq!(proxy.get_with("/mcp", &token).await.status(), 200);
    let seen = echo.last().expect("forwarded");
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
    assert_eq!(seen.header("x-auth-scopes"), Some("mcp:tools mcp:write"));
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
    let seen = echo.last().expect("forwarded");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );

    let (issuer, key, echo, proxy) =
        resource_stack("forward: { strip_authorization: false }\n").await;
    let token = issuer.token_with(
        &key,
        json!({ "aud": RESOURCE, "scp": ["mcp:tools", "mcp:read"] }),
    );
    assert_eq!(proxy.get_with("/mcp", &token).await.status(), 200);
    let seen = echo.last().expect("forwarded");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
}

/// An upstream that answers every request with an event stream: `chunks` written after
/// their delays (HTTP/1.1 chunked), then the end of the body unless `open`.
async fn event_stream_upstream(
    chunks: Vec<(Duration, &'static str)>,
    open: bool,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                for (delay, data) in chunks {
                    tokio::time::sleep(delay).await;
                    let chunk = format!("{:x}\r\n{data}\r\n", data.len());
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if open {
                    // Hold the stream open until the proxy lets go of it.
                    let _ = socket.read(&mut buf).await;
                } else {
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                    let _ = socket.read(&mut buf).await;
                }
            });
        }
    });
    (url, task)
}

/// A `GET` event stream with a token, through the proxy, over HTTP/1.1 or (h2c prior
/// knowledge) HTTP/2; the response (status checked).
async fn open_stream(proxy: &TestProxy, token: &str, http2: bool) -> reqwest::Response {
    let client = match http2 {
        true => reqwest::Client::builder().http2_prior_knowledge().build(),
        false => reqwest::Client::builder().http1_only().build(),
    }
    .expect("client");
    let r = client
        .get(proxy.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "session-1")
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        }
    );
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    r
}

/// Reads a stream to its end: the text, when the first bytes came and when it ended.
async fn read_to_end(mut r: reqwest::Response, started: Instant) -> (String, Duration, Duration) {
    let mut text = String::new();
    let mut first_at = None;
    loop {
        match r.chunk().await {
            Ok(Some(bytes)) => {
                text.push_str(&String::from_utf8_lossy(&bytes));
                first_at.get_or_insert(started.elapsed());
            }
            Ok(None) => break,
            Err(e) => panic!("the stream was cut after {:?}: {e}", started.elapsed()),
        }
    }
    (text, first_at.unwrap_or_default(), started.elapsed())
}

/// Streamable HTTP's listening stream with the defaults (`upstream.timeout`,
/// `limits.send_timeout` and `limits.body_read_timeout` all 60 s, `idle_timeout` 120 s),
/// over HTTP/1.1 and HTTP/2 at once: the first event arrives at once (not buffered), then
/// 62 s of silence, then the second event and a clean end. None of the 60-second timers
/// cuts it.
async fn silent_event_streams_outlive_every_60_second_timeout() {
    let (url, _upstream) = event_stream_upstream(
        vec![
            (Duration::ZERO, "data: one\n\n"),
            (Duration::from_secs(62), "data: two\n\n"),
        ],
        false,
    )
    .await;
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::start(&resource_yaml(&issuer, &url, "")).await;
    proxy.wait_ready().await;
    let token = issuer.token_with(
        &key,
        json!({ "aud": RESOURCE, "scp": ["mcp:tools", "mcp:read"] }),
    );
    let started = Instant::now();
    let (h1, h2) = tokio::join!(
        async { read_to_end(open_stream(&proxy, &token, false).await, started).await },
        async { read_to_end(open_stream(&proxy, &token, true).await, started).await },
    );
    for (protocol, (text, first, total)) in [("HTTP/1.1", h1), ("HTTP/2", h2)] {
        assert!(
            first < Duration::from_secs(2),
            "{protocol}: the first event waited {first:?}"
        );
        assert!(total >= Duration::from_secs(62), "{protocol}: {total:?}");
        assert_eq!(text, "data: one\n\ndata: two\n\n", "{protocol}");
        eprintln!("{protocol} silent event stream: first event after {first:?}, clean end after {total:?}");
    }
}

/// Graceful shutdown: a listening stream ends at its next event boundary (the event in
/// progress completes first), with a clean end of the body (HTTP/1.1 and HTTP/2), and the
/// drain is over at once instead of after `shutdown_timeout`.
#[tokio::test]
async fn mcp_a_listening_stream_ends_cleanly_on_drain() {
    let (url, _upstream) = event_stream_upstream(
        vec![
            (Duration::ZERO, "data: one\n\n"),
            (Duration::ZERO, "data: par"),
            (Duration::from_secs(2), "tial\n\n"),
            (Duration::ZERO, "data: never sent on\n\n"),
        ],
        true,
    )
    .await;
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let mut proxy = TestProxy::start(&resource_yaml(&issuer, &url, "")).await;
    proxy.wait_ready().await;
    let token = issuer.token_with(
        &key,
        json!({ "aud": RESOURCE, "scp": ["mcp:tools", "mcp:read"] }),
    );
    let mut streams = Vec::new();
    for http2 in [false, true] {
        let mut r = open_stream(&proxy, &token, http2).await;
        let mut text = String::new();
        while !text.contains("data: par") {
            match r.chunk().await {
                Ok(Some(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
                other => panic!("the stream ended before the drain: {other:?}"),
            }
        }
        streams.push((http2, r, text));
    }
    let started = Instant::now();
    let drained = proxy.shutdown();
    for (http2, mut r, mut text) in streams {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), r.chunk()).await {
                Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => panic!("http2 {http2}: the stream was cut, not ended: {e}"),
                Err(_) => panic!("http2 {http2}: the stream did not end within 10 s of the drain"),
            }
        }
        assert_eq!(text, "data: one\n\ndata: partial\n\n", "http2 {http2}");
    }
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the drain is over within 10 s (shutdown_timeout is 30 s)")
        .expect("the server task");
    eprintln!(
        "drain: both streams ended cleanly, the drain was over {:?} after it began",
        started.elapsed()
    );
}

/// The MCP peers: oidc-provider minting JWTs for `resource`, the Python SDK server, and
/// the proxy at `listener`'s address in front of it with the MCP resource.
struct McpStack {
    op: OidcProvider,
    _server: McpServer,
    _proxy: TestProxy,
    resource: String,
}

impl McpStack {
    async fn start() -> McpStack {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let resource = format!("http://{addr}/mcp");
        let op = tokio::task::spawn_blocking({
            let resource = resource.clone();
            move || {
                OidcProvider::start_with(
                    600,
                    Peer {
                        env: &[("MCP_RESOURCE", resource.as_str())],
                        ..Peer::default()
                    },
                )
            }
        })
        .await
        .expect("oidc-provider");
        let server = tokio::task::spawn_blocking(McpServer::start)
            .await
            .expect("the MCP server");
        let yaml = format!(
            "issuers:
  - issuer: {op}
    audiences: [\"{resource}\"]
    allow_http: true
    profile: rfc9068
upstream: {{ url: \"http://127.0.0.1:{port}\" }}
routes:
  - {{ path: /mcp, scopes: [mcp:tools] }}
resources:
  - id: \"{resource}\"
    routes: [/mcp]
    authorization_servers: [\"{op}\"]
    audiences: [\"{resource}\"]
    resource_name: tokengate test MCP server
    mcp: true
",
            op = op.issuer(),
            port = server.port,
        );
        let proxy = TestProxy::start_on(listener, &yaml).await;
        proxy.wait_ready().await;
        McpStack {
            op,
            _server: server,
            _proxy: proxy,
            resource,
        }
    }

    /// Runs the TypeScript SDK client with `env` on top of the stack's.
    async fn client(&self, env: &[(&str, &str)], timeout: Duration) -> Value {
        let mut all: Vec<(String, String)> = vec![
            ("MCP_URL".into(), self.resource.clone()),
            ("ISSUER".into(), self.op.issuer().to_owned()),
            ("CLIENT_ID".into(), MCP_CLIENT.into()),
            ("CLIENT_SECRET".into(), MCP_CLIENT_SECRET.into()),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            mcp::client(&env, timeout)
        })
        .await
        .expect("the MCP client")
    }

    fn metadata_url(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            self.resource.trim_end_matches("/mcp")
        )
    }
}

/// The requests the client made, as `METHOD URL STATUS`.
fn steps(report: &Value) -> Vec<String> {
    report["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {} {}",
                r["method"].as_str().unwrap_or("?"),
                r["url"].as_str().unwrap_or("?"),
                r["status"]
            )
        })
        .collect()
}

/// The claims of a compact JWS, unverified (the test looks at what oidc-provider issued).
fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The whole MCP authorization flow with the official SDKs and nothing configured in the
/// client but its credentials, its authorization server and its scope: the 401 names the
/// metadata, the client fetches it, then oidc-provider's metadata, gets a JWT for the
/// resource (RFC 8707 `resource`), and lists and calls tools through tokengate over
/// Streamable HTTP (POST JSON-RPC, the GET listening stream, `Mcp-Session-Id` both ways,
/// DELETE at the end). The server never sees the token, only identity headers.
#[tokio::test]
async fn mcp_sdk_client_discovers_from_the_401_and_calls_tools() {
    let stack = McpStack::start().await;
    let report = stack
        .client(&[("SCOPE", "mcp:tools")], Duration::from_secs(60))
        .await;
    assert!(report["error"].is_null(), "the client failed: {report:#}");
    let steps = steps(&report);
    let op = stack.op.issuer();
    let mcp = &stack.resource;
    let requests = report["requests"].as_array().cloned().unwrap_or_default();
    // Discovery from the 401, in order. (fetch joins the two challenges, Bearer first.)
    assert_eq!(steps[0], format!("POST {mcp} 401"), "{steps:#?}");
    let meta = format!("resource_metadata=\"{}\"", stack.metadata_url());
    assert_eq!(
        requests[0]["www_authenticate"],
        format!(
            "Bearer realm=\"tokengate\", scope=\"mcp:tools\", {meta}, DPoP realm=\"tokengate\", algs=\"{DPOP_ALGS}\", scope=\"mcp:tools\", {meta}"
        )
    );
    assert_eq!(
        steps[1],
        format!("GET {} 200", stack.metadata_url()),
        "{steps:#?}"
    );
    assert!(
        steps[2].starts_with(&format!("GET {op}/.well-known/")) && steps[2].ends_with(" 200"),
        "the authorization server's metadata: {steps:#?}"
    );
    assert_eq!(steps[3], format!("POST {op}/token 200"), "{steps:#?}");
    assert_eq!(steps[4], format!("POST {mcp} 200"), "{steps:#?}");
    // The token: a JWT for this resource (RFC 8707 / RFC 9068), with the scope asked.
    let claims = claims_of(report["access_token"].as_str().unwrap_or_default());
    assert_eq!(claims["aud"], json!(mcp), "{claims}");
    assert_eq!(claims["iss"], json!(op));
    assert_eq!(claims["scope"], "mcp:tools");
    // Streamable HTTP: the session id the server gave comes back on every request, the
    // listening stream (GET, text/event-stream) opened, DELETE ends the session.
    let session = report["session_id"].as_str().expect("a session id");
    assert_eq!(requests[4]["mcp_session_id"], session);
    assert!(
        requests.iter().any(|r| r["method"] == "GET"
            && r["url"] == json!(mcp)
            && r["status"] == 200
            && r["content_type"] == "text/event-stream"),
        "{steps:#?}"
    );
    assert_eq!(
        steps.last().map(String::as_str),
        Some(format!("DELETE {mcp} 200").as_str())
    );
    // The tools, through tokengate.
    assert_eq!(report["tools"], json!(["add", "slow", "whoami"]));
    assert_eq!(report["add"]["structuredContent"]["result"], 5);
    let whoami: Value = serde_json::from_str(
        report["whoami"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("whoami's answer");
    assert_eq!(
        whoami,
        json!({
            "authorization_seen": false,
            "subject": MCP_CLIENT,
            "scopes": "mcp:tools",
            "client_id": MCP_CLIENT,
            "session": session,
        })
    );
}

/// The SDK's client-credentials provider asks for its configured scope only; without one
/// its token has no scope, and tokengate answers 403 naming the scope and the metadata.
/// The SDK then tries to step up (it authorizes again and retries) and gives up on the
/// second 403.
#[tokio::test]
async fn mcp_sdk_client_without_the_scope_gets_403_naming_it() {
    let stack = McpStack::start().await;
    let report = stack.client(&[], Duration::from_secs(60)).await;
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("403"),
        "the client should fail with 403: {report:#}"
    );
    let requests = report["requests"].as_array().cloned().unwrap_or_default();
    let refusals: Vec<&Value> = requests.iter().filter(|r| r["status"] == 403).collect();
    assert!(!refusals.is_empty(), "{:#?}", steps(&report));
    let meta = format!("resource_metadata=\"{}\"", stack.metadata_url());
    for r in refusals {
        // The error goes on the scheme the client used (Bearer); the DPoP challenge names
        // the metadata too.
        assert_eq!(
            r["www_authenticate"],
            format!(
                "Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"mcp:tools\", {meta}, DPoP realm=\"tokengate\", algs=\"{DPOP_ALGS}\", {meta}"
            )
        );
    }
}

/// A tool call that takes 62 s: its response is an event stream that stays open (progress
/// at the start, then 62 s, then progress and the result), through tokengate with the
/// default timeouts.
async fn sdk_a_62_second_tool_call_streams_through() {
    let stack = McpStack::start().await;
    let report = stack
        .client(
            &[
                ("SCOPE", "mcp:tools"),
                ("ACTION", "slow"),
                ("SLOW_SECONDS", "62"),
            ],
            Duration::from_secs(150),
        )
        .await;
    assert!(report["error"].is_null(), "the client failed: {report:#}");
    let slow = &report["slow"];
    assert_eq!(slow["result"]["structuredContent"]["result"], "slept 62.0");
    let elapsed = slow["elapsed_ms"].as_u64().unwrap_or_default();
    assert!(elapsed >= 62_000, "{slow}");
    let progress = slow["progress"].as_array().cloned().unwrap_or_default();
    assert_eq!(progress.len(), 2, "{slow}");
    // The first progress notification came at once, not buffered until the end.
    assert!(
        progress[0]["at_ms"].as_u64().unwrap_or(u64::MAX) < 5_000,
        "{slow}"
    );
    eprintln!("62 s tool call: {elapsed} ms, progress {progress:?}");
}

/// The README's configuration is `examples/mcp.yaml` with a `tls:` line, and it is valid:
/// the MCP resource covers `/mcp`, strips `Authorization`, and serves its metadata at both
/// well-known URLs.
#[tokio::test]
async fn mcp_the_readme_configuration_is_the_example_and_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let example = std::fs::read_to_string(format!("{root}/examples/mcp.yaml")).expect("example");
    let section = &readme[readme
        .find("## In front of an MCP server")
        .expect("the README section")..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let block = &section[start..start + section[start..].find("```\n").expect("its end")];
    let without_tls: String = block
        .lines()
        .filter(|l| !l.starts_with("tls:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let example_body: String = example
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without_tls, example_body);
    let settings = tokengate::config::load_str(
        std::path::Path::new("examples/mcp.yaml"),
        &example,
        &tokengate::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("examples/mcp.yaml is invalid:\n{e}"));
    let [resource] = settings.resources.as_slice() else {
        panic!("one resource")
    };
    assert!(resource.mcp && resource.metadata_at_root);
    assert_eq!(
        resource.metadata_path,
        "/.well-known/oauth-protected-resource/mcp"
    );
    let binding = settings.rules.routes[0]
        .rule
        .resource
        .clone()
        .expect("/mcp is covered");
    assert!(binding.strip_authorization);
    assert_eq!(binding.audiences, ["https://mcp.example.com/mcp"]);
}

/// `tokengate check` on the example names the resource, where its metadata is, what it
/// covers, the audience and that the token is not forwarded.
#[test]
fn mcp_check_prints_the_resource() {
    let output = std::process::Command::new(crate::support::process::BIN)
        .args(["check", "--config", "examples/mcp.yaml"])
        .current_dir(crate::support::process::ROOT)
        .output()
        .expect("tokengate check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("  resource https://mcp.example.com/mcp (MCP): metadata https://mcp.example.com/.well-known/oauth-protected-resource/mcp and at /.well-known/oauth-protected-resource; routes /mcp; audiences https://mcp.example.com/mcp; Authorization not forwarded\n"),
        "{stdout}"
    );
}

/// The two 62-second streams at once (one test thread for a minute, not two): the scripted
/// silent one over HTTP/1.1 and HTTP/2, and the Python SDK server's answer to a 62 s tool
/// call read by the TypeScript SDK client.
#[tokio::test]
async fn mcp_event_streams_of_62_seconds_survive_the_default_timeouts() {
    tokio::join!(
        silent_event_streams_outlive_every_60_second_timeout(),
        sdk_a_62_second_tool_call_streams_through(),
    );
}
