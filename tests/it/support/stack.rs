//! Stack: a test issuer (discovery and JWKS), an upstream, and the proxy between them, ready.
//!
//! ```ignore
//! let s = Stack::builder().routes(ROUTES).extra("cors: { mode: upstream }\n").start().await;
//! assert_eq!(s.status("/api/x", Some(&s.token())).await, 200);
//! ```

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::client::{self, RawResponse};
use super::upstream::{EchoUpstream, Recorded};
use super::{issuer_config, TestIssuer, TestKey, TestProxy};

/// The issuer, the upstream and the proxy, ready (`/readyz` said so).
pub struct Stack {
    pub issuer: TestIssuer,
    /// The key good tokens are signed with (the first one the issuer publishes).
    pub key: TestKey,
    /// Every key the issuer publishes.
    pub keys: Vec<TestKey>,
    pub proxy: TestProxy,
    /// The echo upstream, unless the proxy forwards to [`StackBuilder::upstream_url`].
    echo: Option<EchoUpstream>,
}

/// How to build a [`Stack`]; every part has a default.
pub struct StackBuilder {
    keys: Vec<TestKey>,
    upstream_url: Option<String>,
    routes: String,
    extra: String,
    issuer_lines: String,
}

impl Stack {
    /// One RSA key (`rsa-a`, RS256), an echo upstream, no routes, nothing extra.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            keys: vec![TestKey::load("rsa-a", "rsa-a", Algorithm::RS256)],
            upstream_url: None,
            routes: String::new(),
            extra: String::new(),
            issuer_lines: String::new(),
        }
    }

    /// The default stack with `extra` configuration.
    pub async fn start(extra: &str) -> Stack {
        Stack::builder().extra(extra).start().await
    }

    /// The echo upstream behind the proxy.
    pub fn upstream(&self) -> &EchoUpstream {
        self.echo
            .as_ref()
            .expect("this stack forwards to an upstream of its own, not to an echo upstream")
    }

    /// The published key whose `kid` is `kid`.
    pub fn published(&self, kid: &str) -> &TestKey {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("the issuer publishes no key {kid:?}"))
    }

    /// A good token (see [`TestIssuer::claims`]).
    pub fn token(&self) -> String {
        self.issuer.token(&self.key)
    }

    /// A good token whose claims are changed by `changes` (a null removes a claim).
    pub fn token_with(&self, changes: Value) -> String {
        self.issuer.token_with(&self.key, changes)
    }

    /// A good token with exactly these `scp` scopes.
    pub fn scoped(&self, scopes: &[&str]) -> String {
        self.token_with(json!({ "scp": scopes }))
    }

    /// The request the echo upstream saw last (panics if it saw none).
    pub fn last(&self) -> Recorded {
        self.upstream().last().expect("the upstream saw a request")
    }

    /// `method path` to the proxy, with `Authorization: Bearer token` when there is one and
    /// the given headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new().request(method, self.proxy.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request to the proxy")
    }

    /// `GET path`, with the token as a bearer token when there is one.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, &[]).await
    }

    /// `GET path` with exactly these headers.
    pub async fn get_headers(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None, headers).await
    }

    /// The status of `GET path`, with the token as a bearer token when there is one.
    pub async fn status(&self, path: &str, token: Option<&str>) -> u16 {
        self.get(path, token).await.status().as_u16()
    }

    /// Writes `request` to the proxy byte for byte on a fresh connection and reads the answer
    /// (see [`client::exchange`]).
    pub async fn raw(&self, request: &[u8]) -> RawResponse {
        client::exchange(self.proxy.addr, request).await
    }
}

impl StackBuilder {
    /// The keys the issuer publishes; the first signs [`Stack::token`].
    pub fn keys(mut self, keys: Vec<TestKey>) -> StackBuilder {
        assert!(!keys.is_empty(), "a stack needs a signing key");
        self.keys = keys;
        self
    }

    /// Forward to this upstream instead of an echo upstream of the stack's own.
    pub fn upstream_url(mut self, url: &str) -> StackBuilder {
        self.upstream_url = Some(url.to_owned());
        self
    }

    /// Configuration right after `upstream:` (`routes:`, `default:`...).
    pub fn routes(mut self, routes: &str) -> StackBuilder {
        self.routes = routes.to_owned();
        self
    }

    /// Lines under the issuer's entry (indented by four spaces: `    leeway: 0s\n`).
    pub fn issuer_lines(mut self, lines: &str) -> StackBuilder {
        self.issuer_lines = lines.to_owned();
        self
    }

    /// Configuration after the routes (limits, cors, forward...).
    pub fn extra(mut self, extra: &str) -> StackBuilder {
        self.extra = extra.to_owned();
        self
    }

    pub async fn start(self) -> Stack {
        let issuer = TestIssuer::start(self.keys.clone()).await;
        let (echo, url) = match self.upstream_url {
            Some(url) => (None, url),
            None => {
                let echo = EchoUpstream::start().await;
                let url = echo.url();
                (Some(echo), url)
            }
        };
        let yaml = format!(
            "{}upstream: {{ url: {url} }}\n{}{}",
            issuer_config(&issuer, &self.issuer_lines),
            self.routes,
            self.extra
        );
        let proxy = TestProxy::start(&yaml).await;
        proxy.wait_ready().await;
        Stack {
            issuer,
            key: self.keys[0].clone(),
            keys: self.keys,
            proxy,
            echo,
        }
    }
}
