//! OidcProvider: the real authorization server of `tests/peers/oidc-provider` (oidc-provider,
//! pinned in its package-lock.json) as a child process on 127.0.0.1, killed when dropped.
//! Its node modules are installed by `.ci/install-node-peers`; without them, starting one
//! panics saying so.
//!
//! [`OidcProvider::start`] is the introspection tests' provider (opaque tokens).
//! [`OidcProvider::start_with`] turns on the sender-constrained switches of `server.mjs`
//! ([`Peer`]): JWT access tokens, DPoP, and mTLS (a second, HTTPS listener where client
//! `app-mtls` authenticates with its self-signed certificate and gets certificate-bound tokens).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The peer's folder.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/oidc-provider");

/// tokengate's client id at the peer, which is also the audience of its tokens.
pub const AUDIENCE: &str = "api://tokengate";
/// tokengate's client secret at the peer.
pub const RS_SECRET: &str = "tokengate-secret";

pub struct OidcProvider {
    child: Child,
    issuer: String,
    http: reqwest::Client,
    /// With mTLS: the HTTPS listener and the CA its certificate is signed by.
    mtls: Option<Mtls>,
}

struct Mtls {
    url: String,
    ca_pem: String,
    /// Holds the certificate files the peer read at start.
    _files: tempfile::TempDir,
}

/// The switches of `server.mjs` (all off: [`OidcProvider::start`]).
#[derive(Default)]
pub struct Peer<'a> {
    /// `ACCESS_TOKEN_FORMAT=jwt`: RFC 9068 JWT access tokens (RS256, `aud` = [`AUDIENCE`]).
    pub jwt: bool,
    /// `DPOP=1`: a token request with a DPoP proof gets a DPoP-bound token.
    pub dpop: bool,
    /// `MTLS=1` with this client certificate (PEM) registered for client `app-mtls`.
    pub mtls_client_cert: Option<&'a str>,
    /// More environment variables: the other switches documented at the top of
    /// `server.mjs` (e.g. `MCP_RESOURCE`).
    pub env: &'a [(&'a str, &'a str)],
}

/// A self-signed client certificate (P-256) for `app-mtls`: PEM certificate, PEM key, and the
/// RFC 8705 §3.1 thumbprint (base64url SHA-256 of the DER) a token bound to it carries.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub x5t_s256: String,
}

impl ClientCert {
    /// A new self-signed certificate (P-256) for `name`.
    pub fn generate(name: &str) -> ClientCert {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .expect("a self-signed client certificate");
        ClientCert::from_pem(
            &certified.cert.pem(),
            &certified.signing_key.serialize_pem(),
        )
    }

    /// A certificate and key made elsewhere (PEM; the first certificate in `cert_pem` is the
    /// client's), e.g. one signed by a test CA for `tls.client_ca`.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> ClientCert {
        use base64::Engine;
        let body: String = cert_pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("a PEM certificate");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        ClientCert {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the peer (access tokens living `ttl_seconds`) and waits (up to 90 s: node is
    /// slow to load oidc-provider while the rest of the suite runs) for it to say its issuer. Panics, naming what is missing and how to install it, when node or the
    /// peer's node modules are not there.
    pub fn start(ttl_seconds: u64) -> OidcProvider {
        OidcProvider::start_with(ttl_seconds, Peer::default())
    }

    /// As [`OidcProvider::start`], with the switches of `peer` on.
    pub fn start_with(ttl_seconds: u64, peer: Peer<'_>) -> OidcProvider {
        let modules = format!("{DIR}/node_modules/oidc-provider/package.json");
        if !std::path::Path::new(&modules).exists() {
            panic!(
                "oidc-provider is not installed ({modules} is missing): run `bash .ci/install-node-peers` \
                 (npm ci in tests/peers/oidc-provider; needs Node.js >= 20 and npm)"
            );
        }
        let mut command = Command::new("node");
        command
            .arg("server.mjs")
            .current_dir(DIR)
            .env("PORT", "0")
            .env("AUDIENCE", AUDIENCE)
            .env("RS_SECRET", RS_SECRET)
            .env("ACCESS_TOKEN_TTL", ttl_seconds.to_string())
            .envs(peer.env.iter().copied());
        if peer.jwt {
            command.env("ACCESS_TOKEN_FORMAT", "jwt");
        }
        if peer.dpop {
            command.env("DPOP", "1");
        }
        // The HTTPS listener's certificate comes from a CA made here (node cannot make a
        // certificate), so the test's client verifies it instead of skipping verification.
        let mut mtls = None;
        if let Some(client_cert) = peer.mtls_client_cert {
            let files = tempfile::tempdir().expect("a temporary directory");
            let ca = super::tls::TestCa::new();
            let (cert, key) = ca.leaf_pem(&["127.0.0.1"]);
            for (name, pem) in [
                ("server.pem", &cert),
                ("server-key.pem", &key),
                ("client.pem", &client_cert.to_owned()),
            ] {
                std::fs::write(files.path().join(name), pem).expect("a certificate file");
            }
            command
                .env("MTLS", "1")
                .env("MTLS_SERVER_CERT", files.path().join("server.pem"))
                .env("MTLS_SERVER_KEY", files.path().join("server-key.pem"))
                .env("MTLS_CLIENT_CERT", files.path().join("client.pem"));
            mtls = Some(Mtls {
                url: String::new(),
                ca_pem: ca.pem(),
                _files: files,
            });
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node ({e}): install Node.js >= 20 and npm, then `bash .ci/install-node-peers`")
            });
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            panic!("the oidc-provider peer has no stdout");
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // What node says on stderr, for the message when the peer does not start.
        let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let said = said.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut said) = said.lock() {
                        said.push_str(&line);
                        said.push('\n');
                    }
                }
            });
        }
        let mut peer = OidcProvider {
            child,
            issuer: String::new(),
            http: reqwest::Client::new(),
            mtls,
        };
        while peer.issuer.is_empty() {
            let line = match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(line) => line,
                Err(why) => {
                    let exited = peer.child.try_wait().ok().flatten();
                    let _ = peer.child.kill();
                    let stderr = said.lock().map(|s| s.clone()).unwrap_or_default();
                    panic!(
                        "the oidc-provider peer never said its issuer ({why:?}; exit status \
                         {exited:?}); its stderr:\n{stderr}"
                    );
                }
            };
            let ready: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(issuer) = ready["issuer"].as_str() {
                peer.issuer = issuer.to_owned();
                if let Some(mtls) = peer.mtls.as_mut() {
                    mtls.url = ready["mtls"]
                        .as_str()
                        .unwrap_or_else(|| {
                            panic!("MTLS=1 but the peer names no HTTPS listener: {line}")
                        })
                        .to_owned();
                }
            }
        }
        peer
    }

    /// The issuer identifier (`http://127.0.0.1:PORT`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A new opaque access token for client `app` by client_credentials, with `scope`.
    pub async fn token(&self, scope: &str) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth("app", Some("app-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("the peer's token endpoint answers");
        let body: Value = response.json().await.unwrap_or_default();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token from the peer: {body}"))
            .to_owned()
    }

    /// A client_credentials token for client `app` with `scope`, requested with the DPoP
    /// proof `proof` (htm POST, htu `{issuer}/token`): the whole token response.
    pub async fn token_with_proof(&self, scope: &str, proof: &str) -> Value {
        let response = self
            .http
            .post(self.token_endpoint())
            .basic_auth("app", Some("app-secret"))
            .header("dpop", proof)
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("the peer's token endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "a DPoP token request at the peer: {body}");
        body
    }

    /// A DPoP-bound access token for client `app` with `scope`, bound to `key`: checks that
    /// the peer says `token_type: DPoP` and returns the token.
    pub async fn dpop_token(&self, scope: &str, key: &super::dpop::DpopKey) -> String {
        // A token request's proof has no access token to hash: no `ath` (RFC 9449 §4.2).
        let proof = key.proof_with(
            "POST",
            &self.token_endpoint(),
            "",
            serde_json::json!({}),
            serde_json::json!({ "ath": null }),
        );
        let body = self.token_with_proof(scope, &proof).await;
        assert_eq!(
            body["token_type"], "DPoP",
            "the peer bound the token: {body}"
        );
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token from the peer: {body}"))
            .to_owned()
    }

    /// The token endpoint (`{issuer}/token`).
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// A certificate-bound access token (RFC 8705 §3) for client `app-mtls` with `scope`:
    /// the token request goes to the HTTPS listener, authenticated by presenting `cert`
    /// (self_signed_tls_client_auth). Needs a peer started with `mtls_client_cert`: the
    /// certificate registered there is the only one the peer takes. Returns the whole token
    /// response; the status is the caller's to check (a wrong certificate is a 401).
    pub async fn certificate_bound_token(&self, scope: &str, cert: &ClientCert) -> (u16, Value) {
        let mtls = self
            .mtls
            .as_ref()
            .expect("certificate-bound tokens need a peer started with mtls_client_cert");
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
                .expect("the client certificate and key as an identity");
        let ca = reqwest::Certificate::from_pem(mtls.ca_pem.as_bytes()).expect("the peer's CA");
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .identity(identity)
            .build()
            .expect("an mTLS client");
        let response = client
            .post(format!("{}/token", mtls.url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app-mtls"),
                ("scope", scope),
            ])
            .send()
            .await
            .expect("the peer's HTTPS token endpoint answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Revokes `token` (RFC 7009) as its client.
    pub async fn revoke(&self, token: &str) {
        let status = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth("app", Some("app-secret"))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("the peer's revocation endpoint answers")
            .status();
        assert_eq!(status, 200, "revocation at the peer");
    }

    /// Introspection requests the peer has received so far (from anyone).
    pub async fn introspections(&self) -> u64 {
        let counts: Value = self
            .http
            .get(format!("{}/_test/counts", self.issuer))
            .send()
            .await
            .expect("the peer's counts")
            .json()
            .await
            .unwrap_or_default();
        counts["introspection"]
            .as_u64()
            .expect("the peer counts introspections")
    }
}
