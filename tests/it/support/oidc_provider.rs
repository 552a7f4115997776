//! OidcProvider: the real authorization server of `tests/peers/oidc-provider` (oidc-provider,
//! pinned in its package-lock.json) as a child process on 127.0.0.1, killed when dropped.
//! Its node modules are installed by `.ci/install-node-peers`; without them, starting one
//! panics saying so.

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
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the peer (access tokens living `ttl_seconds`) and waits (up to 30 s) for it to
    /// say its issuer. Panics, naming what is missing and how to install it, when node or the
    /// peer's node modules are not there.
    pub fn start(ttl_seconds: u64) -> OidcProvider {
        OidcProvider::start_with(ttl_seconds, &[])
    }

    /// As [`OidcProvider::start`], with more environment variables (the switches documented
    /// at the top of `server.mjs`, e.g. `MCP_RESOURCE`).
    pub fn start_with(ttl_seconds: u64, env: &[(&str, &str)]) -> OidcProvider {
        let modules = format!("{DIR}/node_modules/oidc-provider/package.json");
        if !std::path::Path::new(&modules).exists() {
            panic!(
                "oidc-provider is not installed ({modules} is missing): run `bash .ci/install-node-peers` \
                 (npm ci in tests/peers/oidc-provider; needs Node.js >= 20 and npm)"
            );
        }
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(DIR)
            .env("PORT", "0")
            .env("AUDIENCE", AUDIENCE)
            .env("RS_SECRET", RS_SECRET)
            .env("ACCESS_TOKEN_TTL", ttl_seconds.to_string())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        let mut peer = OidcProvider {
            child,
            issuer: String::new(),
            http: reqwest::Client::new(),
        };
        while peer.issuer.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the oidc-provider peer never said its issuer"));
            let ready: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(issuer) = ready["issuer"].as_str() {
                peer.issuer = issuer.to_owned();
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
