//! Forward-auth decisions, in-process: an ingress's question (`forward_auth:`) answered by
//! the proxy's own stages on the rebuilt request. The ingress here is a reqwest client bound
//! to 127.0.0.2 (the configured trusted proxy); any other peer (127.0.0.1) is a client that
//! reached the decision endpoint directly. `ingress.rs` runs the same questions through the
//! real nginx, Traefik, Envoy and Caddy.

use std::net::{IpAddr, Ipv4Addr};

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::support::process;
use crate::support::upstream::EchoUpstream;
use crate::support::{issuer_config, read, Mode, TestIssuer, TestKey, TestProxy};

/// The four modes, as written in the configuration.
pub const MODES: [&str; 4] = ["nginx", "traefik", "caddy", "envoy"];

/// The routes every forward-auth test decides on: public, admin-scoped, a scoped method.
pub const ROUTES: &str = "routes:
  - { path: /public/**, auth: none }
  - { path: /admin/**, scopes: [admin] }
  - { path: /orders/**, methods: [DELETE], scopes: [admin] }
default: { auth: required }
";

/// The identity headers tokengate sets by default, plus the payload header the tests
/// configure: every one must be in every allow.
pub const IDENTITY: [&str; 5] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-scopes",
    "x-auth-client-id",
    "x-auth-claims",
];

const INGRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

struct Setup {
    issuer: TestIssuer,
    key: TestKey,
    upstream: EchoUpstream,
    proxy: TestProxy,
    mode: &'static str,
}

/// An issuer, an echo upstream (which no decision may reach) and a proxy with
/// `forward_auth: { mode }` trusting 127.0.0.2 only.
async fn setup(mode: &'static str) -> Setup {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n{ROUTES}forward: {{ payload_header: X-Auth-Claims }}\nforward_auth: {{ mode: {mode}, trusted_proxies: [127.0.0.2/32] }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    Setup {
        issuer,
        key,
        upstream,
        proxy,
        mode,
    }
}

/// A client whose connections come from `from`.
fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap_or_else(|e| panic!("client bound to {from}: {e}"))
}

/// The question `mode`'s ingress asks about `method target` (origin-form), as that ingress
/// writes it, plus `extra` headers the client sent that the ingress passes on.
fn question(
    client: &reqwest::Client,
    base: &str,
    mode: &str,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let builder = match mode {
        "nginx" => client
            .get(format!("{base}/_auth"))
            .header("x-original-method", method)
            .header("x-original-uri", target),
        "traefik" | "caddy" => client
            .get(format!("{base}/_auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-uri", target),
        "envoy" => {
            let method = reqwest::Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            client.request(method, format!("{base}/_auth{target}"))
        }
        other => panic!("no mode {other}"),
    };
    extra
        .iter()
        .fold(builder, |b, (name, value)| b.header(*name, *value))
}

impl Setup {
    fn base(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    /// The trusted ingress asks about `method target`, with `token` in `Authorization`.
    async fn ask(
        &self,
        method: &str,
        target: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        self.ask_from(INGRESS, method, target, token, extra).await
    }

    async fn ask_from(
        &self,
        from: IpAddr,
        method: &str,
        target: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let client = client_from(from);
        let mut request = question(&client, &self.base(), self.mode, method, target, extra);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} question: {e}", self.mode))
    }

    fn token_with_scopes(&self, scopes: &[&str]) -> String {
        self.issuer.token_with(&self.key, json!({ "scp": scopes }))
    }
}

/// The status of a question sent byte for byte (reqwest would resolve dot segments in an
/// Envoy-style path before sending it), from `from`, as `mode`'s ingress writes it (or,
/// for `direct`, to `target` itself).
pub async fn raw_status(
    from: IpAddr,
    to: std::net::SocketAddr,
    mode: &str,
    method: &str,
    target: &str,
    token: Option<&str>,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (line, headers) = match mode {
        "nginx" => (
            "GET /_auth".to_owned(),
            format!("X-Original-Method: {method}\r\nX-Original-URI: {target}\r\n"),
        ),
        "traefik" | "caddy" => (
            "GET /_auth".to_owned(),
            format!("X-Forwarded-Method: {method}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example.com\r\nX-Forwarded-Uri: {target}\r\n"),
        ),
        "envoy" => (format!("{method} /_auth{target}"), String::new()),
        // Not a question: `target` is the whole request target.
        "direct" => (format!("{method} {target}"), String::new()),
        other => panic!("no mode {other}"),
    };
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request =
        format!("{line} HTTP/1.1\r\nHost: tokengate\r\nConnection: close\r\n{headers}{auth}\r\n");
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
    socket
        .bind(std::net::SocketAddr::new(from, 0))
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let mut stream = socket
        .connect(to)
        .await
        .unwrap_or_else(|e| panic!("connect {to}: {e}"));
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

#[tokio::test]
async fn every_mode_allows_a_valid_token_with_every_identity_header_and_forwards_nothing() {
    for mode in MODES {
        let s = setup(mode).await;
        let token = s.token_with_scopes(&["read", "admin"]);
        for (method, target) in [
            ("GET", "/api/messages"),
            ("GET", "/admin/panel?x=1"),
            ("DELETE", "/orders/7"),
        ] {
            let r = s.ask(method, target, Some(&token), &[]).await;
            assert_eq!(r.status(), 200, "{mode} {method} {target}");
            assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
            assert_eq!(header(&r, "x-auth-subject").as_deref(), Some("user-1"));
            assert_eq!(header(&r, "x-auth-issuer").as_deref(), Some(s.issuer.url()));
            assert_eq!(header(&r, "x-auth-scopes").as_deref(), Some("read admin"));
            assert_eq!(header(&r, "x-auth-client-id").as_deref(), Some("client-1"));
            assert!(header(&r, "x-auth-claims").is_some_and(|c| c.len() > 20));
            assert!(r.headers().get("access-control-allow-origin").is_none());
        }
        assert_eq!(
            s.upstream.count(),
            0,
            "{mode}: a decision reached the upstream"
        );
    }
}

#[tokio::test]
async fn identity_headers_are_present_and_empty_when_there_is_nothing_to_say() {
    for mode in MODES {
        let s = setup(mode).await;
        // No cid and no scopes: those headers are there, empty.
        let token = s
            .issuer
            .token_with(&s.key, json!({"cid": null, "scp": null}));
        let r = s.ask("GET", "/api/x", Some(&token), &[]).await;
        assert_eq!(r.status(), 200, "{mode}");
        for name in IDENTITY {
            assert!(r.headers().contains_key(name), "{mode}: {name} missing");
        }
        assert_eq!(header(&r, "x-auth-client-id").as_deref(), Some(""));
        assert_eq!(header(&r, "x-auth-scopes").as_deref(), Some(""));
        // A public route: anonymous, every identity header empty, even with a token (a
        // token on a public route never becomes identity) and with client copies sent.
        for token in [None, Some(token.as_str())] {
            let r = s
                .ask(
                    "GET",
                    "/public/page",
                    token,
                    &[("x-auth-subject", "admin"), ("x-auth-scopes", "admin")],
                )
                .await;
            assert_eq!(r.status(), 200, "{mode}");
            for name in IDENTITY {
                assert_eq!(header(&r, name).as_deref(), Some(""), "{mode}: {name}");
            }
        }
    }
}

#[tokio::test]
async fn refusals_carry_the_challenge_the_body_and_the_right_status() {
    for mode in MODES {
        let s = setup(mode).await;
        // No token: 401, bare challenge, JSON body.
        let (status, challenge, body) = read(s.ask("GET", "/api/x", None, &[]).await).await;
        assert_eq!(status, 401, "{mode}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"tokengate\""));
        assert_eq!(body["error"], "unauthorized");
        // An invalid token: 401 invalid_token, naming the check.
        let expired = s
            .issuer
            .token_with(&s.key, json!({"exp": 1_000_000, "iat": 999_000}));
        let (status, challenge, body) =
            read(s.ask("GET", "/api/x", Some(&expired), &[]).await).await;
        assert_eq!(status, 401, "{mode}");
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.contains("error=\"invalid_token\"")),
            "{mode}: {challenge:?}"
        );
        assert_eq!(body["error"], "invalid_token");
        // A scope missing: 403 insufficient_scope with the scope named.
        let reader = s.token_with_scopes(&["read"]);
        let (status, challenge, body) =
            read(s.ask("GET", "/admin/panel", Some(&reader), &[]).await).await;
        assert_eq!(status, 403, "{mode}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"admin\"")
        );
        assert_eq!(body["error"], "insufficient_scope");
        // The method is the original one: DELETE /orders needs admin, GET does not.
        let r = s.ask("GET", "/orders/7", Some(&reader), &[]).await;
        assert_eq!(r.status(), 200, "{mode}");
        let r = s.ask("DELETE", "/orders/7", Some(&reader), &[]).await;
        assert_eq!(r.status(), 403, "{mode}");
        // A token in the original query is refused as the proxy refuses it.
        let (status, _, body) =
            read(s.ask("GET", "/api/x?access_token=abc", None, &[]).await).await;
        assert_eq!(status, 401, "{mode}");
        assert!(body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("query")));
        assert_eq!(s.upstream.count(), 0);
    }
}

#[tokio::test]
async fn without_keys_a_decision_is_503_with_retry_after() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    issuer.set_mode(Mode::Down(503));
    let yaml = format!(
        "{}{ROUTES}forward_auth: {{ mode: nginx, trusted_proxies: [127.0.0.2/32] }}\n",
        issuer_config(&issuer, "")
    );
    let proxy = TestProxy::start(&yaml).await;
    let token = issuer.token(&key);
    let r = question(
        &client_from(INGRESS),
        &format!("http://{}", proxy.addr),
        "nginx",
        "GET",
        "/api/x",
        &[],
    )
    .bearer_auth(&token)
    .send()
    .await
    .unwrap_or_else(|e| panic!("question: {e}"));
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("5"));
    assert!(r.headers().get("x-auth-subject").is_none());
}

#[tokio::test]
async fn an_untrusted_peer_gets_403_whatever_it_says() {
    for mode in MODES {
        let s = setup(mode).await;
        let admin = s.token_with_scopes(&["admin"]);
        // 127.0.0.1 is not the ingress: refused, with a valid token too, on any path.
        for target in ["/public/page", "/admin/panel", "/api/x"] {
            let (status, challenge, body) = read(
                s.ask_from(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    "GET",
                    target,
                    Some(&admin),
                    &[],
                )
                .await,
            )
            .await;
            assert_eq!(status, 403, "{mode} {target}");
            assert_eq!(challenge, None);
            assert_eq!(body["error"], "access_denied");
        }
        // Without any original-request header, too.
        let r = client_from(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .get(format!("{}/_auth", s.base()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 403, "{mode}");
        assert_eq!(s.upstream.count(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_is_logged_without_its_token() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fa.yaml");
    let yaml = format!(
        "{}{ROUTES}forward_auth: {{ mode: nginx, trusted_proxies: [127.0.0.2/32] }}\n",
        issuer_config(&issuer, "")
    );
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("write config: {e}"));
    let running = process::spawn(&["--config", &path.to_string_lossy()]);
    let token = issuer.token(&key);
    let r = reqwest::Client::new()
        .get(format!("{}/_auth", running.base))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/public/page")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 403);
    let request_id = header(&r, "x-request-id").unwrap_or_default();
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = running
            .logs
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            lines.push(line);
            let refused = lines
                .iter()
                .any(|l| l.contains("forward-auth question refused"));
            let logged = lines.iter().any(|l| l.contains("tokengate::access"));
            if refused && logged {
                break;
            }
        }
    }
    let refused: Vec<Value> = lines
        .iter()
        .filter(|l| l.contains("forward-auth question refused"))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    let fields = &refused[0];
    assert_eq!(refused[0]["level"], "WARN");
    assert_eq!(fields["reason"], "forward_auth_untrusted_peer", "{fields}");
    assert_eq!(fields["request_id"], request_id.as_str());
    assert!(fields["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    for line in &lines {
        assert!(!line.contains(&token), "a log line holds the token: {line}");
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(!line.contains(signature), "a log line holds the signature");
    }
}

#[tokio::test]
async fn missing_repeated_and_ambiguous_original_headers_are_400() {
    for mode in ["nginx", "traefik", "caddy"] {
        let s = setup(mode).await;
        let admin = s.token_with_scopes(&["admin"]);
        let (method_header, uri_header) = match mode {
            "nginx" => ("x-original-method", "x-original-uri"),
            _ => ("x-forwarded-method", "x-forwarded-uri"),
        };
        // Repeated: the ingress appended the client's copy instead of replacing it.
        let r = s
            .ask(
                "GET",
                "/admin/panel",
                Some(&admin),
                &[(uri_header, "/public/page")],
            )
            .await;
        assert_eq!(r.status(), 400, "{mode}: repeated {uri_header}");
        let r = s
            .ask("GET", "/public/page", None, &[(method_header, "POST")])
            .await;
        assert_eq!(r.status(), 400, "{mode}: repeated {method_header}");
        // Missing: only the Authorization header, nothing else.
        let r = client_from(INGRESS)
            .get(format!("{}/_auth", s.base()))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (status, _, body) = read(r).await;
        assert_eq!(status, 400, "{mode}: no original request");
        assert_eq!(body["error"], "invalid_request");
        // Unreadable: a target that is not a path, a method in lower case.
        let r = s.ask("GET", "https://x/admin", Some(&admin), &[]).await;
        assert_eq!(r.status(), 400, "{mode}");
        let r = s.ask("get", "/public/page", Some(&admin), &[]).await;
        assert_eq!(r.status(), 400, "{mode}: lower-case method");
        let r = s.ask("CONNECT", "/public/page", Some(&admin), &[]).await;
        assert_eq!(r.status(), 405, "{mode}: CONNECT");
    }
    let s = setup("traefik").await;
    for (name, value) in [
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-host", "a.example, b.example"),
        ("x-forwarded-proto", "http"),
    ] {
        let r = s.ask("GET", "/public/page", None, &[(name, value)]).await;
        assert_eq!(r.status(), 400, "{name}: {value}");
    }
    // Envoy: the prefix alone names no request.
    let s = setup("envoy").await;
    let r = client_from(INGRESS)
        .get(format!("{}/_auth", s.base()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_client_named_public_path_never_flips_the_decision() {
    // What the client controls in each mode, and what it tries: the real request is to
    // /admin/panel; it names /public/page in every header an ingress might pass on.
    let spoof: [(&str, &str); 5] = [
        ("x-original-uri", "/public/page"),
        ("x-forwarded-uri", "/public/page"),
        ("x-original-url", "/public/page"),
        ("x-rewrite-url", "/public/page"),
        ("x-forwarded-prefix", "/public"),
    ];
    for mode in MODES {
        let s = setup(mode).await;
        let reader = s.token_with_scopes(&["read"]);
        // Each spoofed header alone, beside the ingress's own: never a 200. Where the
        // spoofed header is the mode's own, the ingress passing it on beside its own is a
        // repeat (400); elsewhere it is ignored and /admin/panel decided (401/403).
        for (name, value) in spoof {
            let own = matches!(
                (mode, name),
                ("nginx", "x-original-uri") | ("traefik" | "caddy", "x-forwarded-uri")
            );
            let without = s.ask("GET", "/admin/panel", None, &[(name, value)]).await;
            let with = s
                .ask("GET", "/admin/panel", Some(&reader), &[(name, value)])
                .await;
            let expected = if own { (400, 400) } else { (401, 403) };
            assert_eq!(
                (without.status().as_u16(), with.status().as_u16()),
                expected,
                "{mode}: {name}"
            );
        }
        // Dot segments and encoded dots in the original target are resolved before the
        // rules: /public/../admin is /admin.
        let raw = |target: &'static str, token: Option<&'static str>| {
            raw_status(INGRESS, s.proxy.addr, mode, "GET", target, token)
        };
        let reader: &'static str = Box::leak(reader.into_boxed_str());
        for target in ["/public/../admin/panel", "/public/%2e%2e/admin/panel"] {
            assert_eq!(raw(target, None).await, 401, "{mode}: {target}");
            assert_eq!(raw(target, Some(reader)).await, 403, "{mode}: {target}");
        }
        // Ambiguous targets are refused, never guessed.
        for target in [
            "/public/..%2fadmin/panel",
            "/public/%5c../admin",
            "/public;x/../admin",
        ] {
            assert_eq!(raw(target, Some(reader)).await, 400, "{mode}: {target}");
        }
    }
    // Envoy: the decision path as a prefix cannot be spelled around; a path that is the
    // prefix only once canonicalised is refused rather than proxied or decided otherwise.
    let s = setup("envoy").await;
    for path in [
        "//_auth/public/page",
        "/%5Fauth/public/page",
        "/x/../_auth/public/page",
    ] {
        let status = raw_status(INGRESS, s.proxy.addr, "direct", "GET", path, None).await;
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn the_decision_endpoint_is_only_where_configured() {
    // Without forward_auth:, /_auth is an ordinary path (here: the default rule, forwarded
    // with a token), and X-Original-URI from a client routes nothing.
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n{ROUTES}",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let r = client_from(INGRESS)
        .get(proxy.url("/_auth"))
        .header("x-original-uri", "/public/page")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 401);
    // With it, at a custom path.
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n{ROUTES}forward_auth: {{ mode: nginx, path: /decide, trusted_proxies: [127.0.0.2] }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let r = client_from(INGRESS)
        .get(proxy.url("/decide"))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/public/page")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.count(), 0);
}

#[test]
fn a_bad_forward_auth_block_names_file_line_field_and_hint() {
    let yaml = "issuers:\n  - issuer: https://idp.example.com\n    audiences: [api]\nforward_auth:\n  path: /_auth\n  trusted_proxies: [0.0.0.0/0]\n";
    let errors = match tokengate::config::load_str(
        std::path::Path::new("fa.yaml"),
        yaml,
        &tokengate::config::Overrides::default(),
    ) {
        Ok(_) => panic!("accepted a forward_auth block without a mode"),
        Err(e) => e,
    };
    let text = errors.to_string();
    assert!(
        text.contains("fa.yaml:4: forward_auth.mode: the mode is required"),
        "{text}"
    );
    assert!(
        text.contains("hint: add mode: nginx, traefik, caddy or envoy"),
        "{text}"
    );
    assert!(
        text.contains(
            "fa.yaml:6: forward_auth.trusted_proxies[0]: `0.0.0.0/0` trusts every address"
        ),
        "{text}"
    );
}

/// DPoP through forward-auth: the proof names the original request (its method, and the
/// scheme and host the ingress reports, or `dpop.external_url`), and the answer says the token
/// was bound.
#[tokio::test]
async fn a_dpop_proof_is_checked_against_the_original_request() {
    use crate::support::dpop::DpopKey;
    let key = DpopKey::es256();
    for mode in ["traefik", "caddy", "nginx", "envoy"] {
        let s = setup(mode).await;
        let token = s
            .issuer
            .token_with(&s.key, json!({ "cnf": { "jkt": key.jkt() } }));
        let dpop = format!("DPoP {token}");
        // nginx and Envoy report no scheme or host, and no external_url is configured: no
        // proof can be checked there.
        let reports_origin = matches!(mode, "traefik" | "caddy");
        let good = key.proof("DELETE", "https://app.example.com/orders/7", &token);
        let client = client_from(INGRESS);
        let ask = |proof: &str| {
            question(&client, &s.base(), mode, "DELETE", "/orders/7?x=1", &[])
                .header("authorization", dpop.as_str())
                .header("dpop", proof)
                .send()
        };
        let admin = s.issuer.token_with(
            &s.key,
            json!({ "cnf": { "jkt": key.jkt() }, "scp": ["admin"] }),
        );
        let admin_proof = key.proof("DELETE", "https://app.example.com/orders/7", &admin);
        let r = question(&client, &s.base(), mode, "DELETE", "/orders/7", &[])
            .header("authorization", format!("DPoP {admin}"))
            .header("dpop", admin_proof)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        if reports_origin {
            assert_eq!(r.status(), 200, "{mode}: a good proof");
            assert_eq!(
                r.headers()
                    .get("x-auth-token-binding")
                    .and_then(|v| v.to_str().ok()),
                Some("dpop"),
                "{mode}"
            );
        } else {
            assert_eq!(r.status(), 401, "{mode}: no origin known");
        }
        // The route needs admin: a valid proof with a token lacking it is still a 403.
        if reports_origin {
            let r = ask(&good).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(r.status(), 403, "{mode}: scope");
            // A proof for another method, or another host, is refused.
            for (what, proof) in [
                (
                    "method",
                    key.proof("GET", "https://app.example.com/orders/7", &admin),
                ),
                (
                    "host",
                    key.proof("DELETE", "https://evil.example.com/orders/7", &admin),
                ),
            ] {
                let r = question(&client, &s.base(), mode, "DELETE", "/orders/7", &[])
                    .header("authorization", format!("DPoP {admin}"))
                    .header("dpop", proof)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{mode}: {e}"));
                assert_eq!(r.status(), 401, "{mode}: another {what}");
            }
        }
        assert!(
            s.upstream.last().is_none(),
            "{mode}: a decision forwards nothing"
        );
    }
}
