//! Real parts for the integration tests: an OIDC issuer, the proxy itself, fixture keys.

pub mod client;
pub mod dpop;
pub mod dpop_clients;
pub mod introspection;
pub mod issuer;
pub mod keys;
pub mod mcp;
pub mod oidc_provider;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod redis;
pub mod serve;
pub mod stack;
pub mod tls;
pub mod upstream;

pub use issuer::{Mode, TestIssuer};
pub use keys::TestKey;
pub use proxy::{issuer_config, TestProxy};
pub use stack::Stack;

use serde_json::Value;

/// The response's status, `WWW-Authenticate` and JSON body.
pub async fn read(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

/// A proxy and an issuer with one RSA key, ready.
pub async fn rsa_setup() -> (TestIssuer, TestKey, TestProxy) {
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    (issuer, key, proxy)
}

/// Polls `f` every 100 ms for up to `seconds`, returning as soon as it holds.
pub async fn eventually(seconds: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..seconds * 10 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}
