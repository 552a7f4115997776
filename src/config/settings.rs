//! Runtime configuration: everything parsed, checked and ready for the hot path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use url::Url;

use crate::claims::ClaimRule;

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file this came from, for messages.
    pub source: PathBuf,
    pub listen: SocketAddr,
    pub issuers: Vec<IssuerSettings>,
    pub dev_issuer: Option<DevIssuerSettings>,
    pub keys: KeyTimings,
    pub cors: Option<CorsSettings>,
    pub log: LogSettings,
    pub limits: Limits,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// Compared byte for byte with the token's `iss`.
    pub issuer: String,
    pub audiences: Vec<String>,
    /// The allow-list; a key only ever verifies the members that fit its type.
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub key_source: KeySource,
    pub allow_http: bool,
    pub claims: Vec<ClaimRule>,
    /// RFC 9068: `typ` must be `at+jwt` and its required claims present.
    pub require_rfc9068: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// OIDC discovery on the issuer, then RFC 8414 metadata.
    Discovery,
    JwksUri(Url),
    JwksFile(PathBuf),
    /// The embedded dev issuer's own key, held in memory.
    DevIssuer,
}

#[derive(Debug, Clone)]
pub struct DevIssuerSettings {
    pub issuer: String,
    pub audience: String,
    pub key_file: Option<PathBuf>,
    pub token_lifetime: Duration,
}

/// How keys are fetched and kept (`keys:`).
#[derive(Debug, Clone)]
pub struct KeyTimings {
    /// Cache lifetime when the JWKS response says nothing.
    pub refresh: Duration,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub refetch_per_minute: u32,
    pub fetch_timeout: Duration,
    pub max_stale: Duration,
}

impl Default for KeyTimings {
    fn default() -> Self {
        KeyTimings {
            refresh: Duration::from_secs(3600),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(24 * 3600),
            refetch_per_minute: 10,
            fetch_timeout: Duration::from_secs(5),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CorsSettings {
    pub allow_origins: AllowedOrigins,
    pub allow_methods: HeaderValue,
    /// `None`: reflect the preflight's `Access-Control-Request-Headers`, as `cors()` does.
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: HeaderValue,
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
    pub methods: Vec<Method>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<HeaderValue>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_token_bytes: usize,
}

impl Settings {
    pub fn issuer(&self, iss: &str) -> Option<&IssuerSettings> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }
}

/// A header name and value pair, built once at load.
pub type StaticHeader = (HeaderName, HeaderValue);

/// Converts a YAML scalar or structure into JSON for claim comparison.
pub fn yaml_to_json(v: &serde_yaml::Value) -> Option<Value> {
    serde_json::to_value(v).ok()
}
