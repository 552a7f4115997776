//! Certificate-bound access tokens (RFC 8705 §3): a token with `cnf["x5t#S256"]` passes only
//! with the client certificate it names, from tokengate's own TLS listener (`tls.client_auth`:
//! `required`, `optional`, `optional_any`) or from a TLS-terminating proxy in
//! `trusted_proxies` (`client_certificate:` with the `rfc9440`, `xfcc` and `nginx` formats),
//! with real clients (reqwest/rustls, the curl binary) and real proxies (nginx, Envoy) running
//! the shipped `examples/mtls/` files.

mod headers;
mod own_tls;
mod peers;

use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::support::tls::{ClientCert, TestCa};
use crate::support::upstream::{EchoUpstream, Recorded};
use crate::support::{eventually, issuer_config, TestIssuer, TestKey, TestProxy};

/// `/public/**` without a token, everything else with one.
pub const ROUTES: &str =
    "routes:\n  - { path: /public/**, auth: none }\n  - { path: /**, auth: required }\n";

/// A CA, tokengate's (or a proxy's) certificate for `localhost`, and client certificates:
/// `alice` and `mallory` signed by the CA, `selfsigned` and `stranger` self-signed. Every
/// file lives in `dir`.
pub struct Pki {
    pub ca: TestCa,
    pub dir: tempfile::TempDir,
    pub ca_file: String,
    pub server_cert: String,
    pub server_key: String,
    pub alice: ClientCert,
    pub mallory: ClientCert,
    pub selfsigned: ClientCert,
    pub stranger: ClientCert,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().expect("tempdir");
        // nginx's workers (run as nobody under root) read the files.
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write");
        let (cert, key) = ca.leaf_pem(&["localhost"]);
        let (server_cert, server_key) = (
            dir.path().join("server.pem"),
            dir.path().join("server-key.pem"),
        );
        std::fs::write(&server_cert, cert).expect("write");
        std::fs::write(&server_key, key).expect("write");
        let (alice, mallory) = (ca.client("alice"), ca.client("mallory"));
        Pki {
            ca_file: ca_file.display().to_string(),
            server_cert: server_cert.display().to_string(),
            server_key: server_key.display().to_string(),
            alice,
            mallory,
            selfsigned: ClientCert::self_signed("selfsigned"),
            stranger: ClientCert::self_signed("stranger"),
            ca,
            dir,
        }
    }

    /// `tls:` with tokengate's certificate and `client_auth` (with `client_ca` for `required`
    /// and `optional`).
    pub fn tls(&self, client_auth: &str) -> String {
        let ca = match client_auth {
            "optional_any" => String::new(),
            _ => format!(", client_ca: {}", self.ca_file),
        };
        format!(
            "tls: {{ cert: {}, key: {}, client_auth: {client_auth}{ca} }}\n",
            self.server_cert, self.server_key
        )
    }

    /// An HTTPS client trusting the CA, presenting `identity` if given; `localhost` resolves
    /// to `addr`.
    pub fn client(&self, addr: SocketAddr, identity: Option<&ClientCert>) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).expect("root");
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([root])
            .resolve("localhost", addr);
        if let Some(identity) = identity {
            builder = builder.identity(identity.identity());
        }
        builder.build().expect("client")
    }
}

/// The issuer, an echo upstream and tokengate (plain or TLS, as `extra` says), with the
/// issuer's keys loaded.
pub struct MtlsStack {
    /// The configuration tokengate started with, but `extra`.
    pub base: String,
    pub issuer: TestIssuer,
    pub key: TestKey,
    pub upstream: EchoUpstream,
    pub proxy: TestProxy,
}

impl MtlsStack {
    pub async fn start(extra: &str) -> MtlsStack {
        let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
        let issuer = TestIssuer::start(vec![key.clone()]).await;
        let upstream = EchoUpstream::start().await;
        let base = format!(
            "{}upstream: {{ url: {} }}\n{ROUTES}",
            issuer_config(&issuer, ""),
            upstream.url()
        );
        let proxy = TestProxy::start(&format!("{base}{extra}")).await;
        let ready = eventually(10, async || {
            proxy.app().keys().issuers_without_keys().is_empty()
        })
        .await;
        assert!(ready, "tokengate never loaded the test issuer's keys");
        MtlsStack {
            base,
            issuer,
            key,
            upstream,
            proxy,
        }
    }

    /// Reloads tokengate with `extra` after the configuration it started with.
    pub fn reload(&self, extra: &str) {
        let overrides = tokengate::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let yaml = format!("{}{extra}", self.base);
        let settings =
            tokengate::config::load_str(std::path::Path::new("t.yaml"), &yaml, &overrides)
                .unwrap_or_else(|e| panic!("invalid:\n{e}\n{yaml}"));
        self.proxy.gateway.reload(settings).expect("reload");
    }

    /// A good token bound to `cert` (`cnf["x5t#S256"]`).
    pub fn bound(&self, cert: &ClientCert) -> String {
        self.issuer
            .token_with(&self.key, json!({ "cnf": { "x5t#S256": cert.x5t() } }))
    }

    /// A good unbound token.
    pub fn token(&self) -> String {
        self.issuer.token(&self.key)
    }

    /// `https://localhost:PORT/path`.
    pub fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.proxy.addr.port())
    }

    /// The request the upstream saw last.
    pub fn last(&self) -> Recorded {
        self.upstream.last().expect("the upstream saw a request")
    }
}

/// Status and the JSON body's `error`.
pub async fn outcome(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Every value the upstream saw under `name`, in any spelling (`_` as `-`, any case).
pub fn seen_in_any_spelling(seen: &Recorded, name: &str) -> Vec<String> {
    let normal = |n: &str| n.to_ascii_lowercase().replace('_', "-");
    seen.headers
        .iter()
        .filter(|(n, _)| normal(n) == normal(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// URL-encoding as nginx's `$ssl_client_escaped_cert` and Envoy's `Cert=` write it.
pub fn url_escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Runs the real `curl` binary (off the runtime's thread) with `args`; its exit code and
/// stdout. Fails loudly when curl is missing.
pub async fn curl(args: Vec<String>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("curl")
            .args(&args)
            .output()
            .unwrap_or_else(|e| {
                panic!("curl is not installed ({e}): run `bash .ci/install-ingress` (apt-get install curl)")
            });
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    })
    .await
    .expect("curl task")
}

/// curl arguments for `GET url` with `token`, trusting `ca_file`, `localhost` pinned to
/// 127.0.0.1:`port`, presenting `cert` (a pair of file paths) if given; stdout is the status
/// code (`000` when there was no response).
pub fn curl_get(
    url: &str,
    port: u16,
    ca_file: &str,
    token: &str,
    cert: Option<&(String, String)>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        ca_file,
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-w",
        "%{http_code}\n",
        "-o",
        "/dev/null",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some((cert, key)) = cert {
        args.extend(["--cert".into(), cert.clone(), "--key".into(), key.clone()]);
    }
    args.push(url.to_owned());
    args
}

/// `tokengate check` says where client certificates come from, or that there are none.
#[test]
fn check_names_the_certificate_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mtls.yaml");
    let issuer = "issuers:\n  - issuer: https://idp.example.com\n    audiences: [api]\n";
    for (extra, expected) in [
        ("", "client certificates: none (certificate-bound tokens are refused)"),
        (
            "tls: { cert: Cargo.toml, key: Cargo.toml, client_auth: optional_any }\n",
            "client certificates: TLS, optional, any certificate whose key signs the handshake (binding only)\n",
        ),
        (
            "trusted_proxies: [10.0.0.1]\nclient_certificate: { format: nginx, header: X-SSL-Client-Cert }\n",
            "client certificates: header x-ssl-client-cert (nginx) from trusted_proxies only",
        ),
    ] {
        std::fs::write(&path, format!("{issuer}{extra}")).expect("write");
        let out = std::process::Command::new(crate::support::process::BIN)
            .current_dir(crate::support::process::ROOT)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}
