//! The configuration file as written: serde types only, no validation.
//!
//! Every struct denies unknown fields so a typo is an error, never a silently ignored setting.
//! `validate/` turns these into the runtime types of `settings.rs`. Field names are the YAML
//! keys; durations stay text (`30s`) and are parsed, with the field's path, in `validate/`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    pub dev_issuer: Option<RawDevIssuer>,
    #[serde(default)]
    pub keys: RawKeys,
    pub cors: Option<RawCors>,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub limits: RawLimits,
    pub shutdown_timeout: Option<String>,
    pub upstream: Option<RawUpstream>,
    #[serde(default)]
    pub forward: RawForward,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub default: Option<RawRule>,
    #[serde(default)]
    pub paths: RawPaths,
    pub resource: Option<RawResource>,
    /// RFC 9728 protected resources, each covering some routes.
    pub resources: Option<Vec<RawProtectedResource>>,
    #[serde(default)]
    pub cache: RawCache,
    pub tls: Option<RawTls>,
    pub admin: Option<RawAdmin>,
    pub forward_auth: Option<RawForwardAuth>,
    /// Issuers (their exact `issuer` values) asked about an opaque token, in order.
    pub opaque_tokens: Option<Vec<String>>,
    /// DPoP (RFC 9449) proof checks: `htu`'s origin, algorithms, `iat` window, nonces, replay.
    #[serde(default)]
    pub dpop: RawDpop,
    /// The client certificate a TLS-terminating proxy in `trusted_proxies` passes on.
    pub client_certificate: Option<RawClientCertificate>,
}

/// `client_certificate:`: the header a trusted TLS-terminating proxy carries the client's
/// certificate in, and its format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientCertificate {
    pub header: Option<String>,
    /// `rfc9440`, `xfcc` or `nginx`.
    pub format: Option<String>,
}

/// `dpop:`: how DPoP proofs (RFC 9449 §4.3) are checked; every field has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpop {
    /// `scheme://host[:port]` clients use to reach tokengate: `htu` is this plus the path.
    pub external_url: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub iat_window: Option<RawIatWindow>,
    pub nonce: Option<RawDpopNonce>,
    #[serde(default)]
    pub replay: RawReplay,
}

/// `dpop.iat_window`: how far a proof's `iat` may lie in the past and in the future.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIatWindow {
    pub past: Option<String>,
    pub future: Option<String>,
}

/// `dpop.nonce`: server-provided nonces (RFC 9449 §8), derived from a shared secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpopNonce {
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
    pub lifetime: Option<String>,
}

/// `dpop.replay`: where used proofs are remembered.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    /// `memory` (default) or `redis`.
    pub store: Option<String>,
    pub max_entries: Option<usize>,
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub key_prefix: Option<String>,
}

/// `forward_auth:`: the decision endpoint an ingress asks (`config/forward_auth.rs` checks it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    /// `nginx`, `traefik`, `caddy` or `envoy`; required (optional here so that its absence
    /// gets a message with a hint rather than serde's).
    pub mode: Option<String>,
    /// The decision path (nginx, traefik, caddy).
    pub path: Option<String>,
    /// The prefix Envoy's `ext_authz` puts before the original path (envoy).
    pub path_prefix: Option<String>,
    /// Peers whose original-request headers are believed; required, never empty.
    pub trusted_proxies: Option<Vec<String>>,
}

/// `tls:`: PEM files for the public listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
    /// `required`, `optional` or `optional_any`.
    pub client_auth: Option<String>,
}

/// `admin:`: the admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
}

/// `cache:`: the verified-token cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub max_entries: Option<usize>,
}

/// `upstream:`: where verified requests go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub http2: bool,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle: Option<usize>,
    pub preserve_host: Option<bool>,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
}

/// `forward:`: identity headers set and stripped.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// Header name → a claim path, or a list of claim paths of which the first present wins.
    pub headers: Option<BTreeMap<String, serde_yaml::Value>>,
    pub strip_prefix: Option<String>,
    pub separator: Option<String>,
    pub payload_header: Option<String>,
    /// `None`: not written (false, but true on the routes of an MCP resource).
    pub strip_authorization: Option<bool>,
    /// More identity headers of other systems to strip: names or `Prefix*` patterns.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// Foreign identity headers kept from `trusted_proxies`.
    #[serde(default)]
    pub trusted_identity_headers: Vec<String>,
    /// `joined` (default) or `json`, for every claims header that does not say.
    pub array_format: Option<String>,
}

/// A `routes:` entry. It repeats `RawRule`'s fields rather than flattening them in, because
/// serde's `flatten` does not work with `deny_unknown_fields` (typos would pass silently).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub any_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub claims: BTreeMap<String, serde_yaml::Value>,
    pub issuers: Option<Vec<String>>,
    /// `off`, `allowed` (default) or `required`: DPoP-bound tokens (RFC 9449) on this route.
    pub dpop: Option<String>,
}

/// `default:`: the rule for requests no route matches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub any_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub claims: BTreeMap<String, serde_yaml::Value>,
    pub issuers: Option<Vec<String>>,
    pub dpop: Option<String>,
}

/// `paths:`: how request paths are matched.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    #[serde(default)]
    pub allow_parameters: bool,
    #[serde(default)]
    pub case_insensitive: bool,
}

/// `resource:`: RFC 9728 protected resource metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    pub id: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// A `resources:` entry: one protected resource (RFC 9728) and the routes it covers
/// (`config/validate/resources.rs` checks it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtectedResource {
    #[serde(default)]
    pub id: String,
    /// The `path` of each `routes:` entry it covers, as written there.
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Option<Vec<String>>,
    pub resource_name: Option<String>,
    pub resource_documentation: Option<String>,
    /// `aud` values a token on these routes must carry (one of them).
    pub audiences: Option<Vec<String>>,
    /// An MCP server: audiences required, `Authorization` not forwarded by default.
    #[serde(default)]
    pub mcp: bool,
    /// Also serve the metadata at `/.well-known/oauth-protected-resource`.
    #[serde(default)]
    pub metadata_at_root: bool,
}

/// An `issuers:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub algorithms: Option<Vec<String>>,
    pub leeway: Option<String>,
    /// The longest lifetime a token may claim (`exp` beyond now, or beyond `iat`).
    pub max_lifetime: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    /// Claim name (a dotted path) → a value (`equals`) or a predicate mapping.
    pub claims: BTreeMap<String, serde_yaml::Value>,
    pub profile: Option<String>,
    /// A shared secret for HS256/384/512 (never inline: a file or an environment variable).
    pub hmac: Option<RawHmac>,
    /// RFC 7662 token introspection for this issuer's opaque tokens.
    pub introspection: Option<RawIntrospection>,
    /// Introspect this issuer's JWTs too (revocation), after their local verification.
    #[serde(default)]
    pub introspect_jwts: bool,
}

/// `issuers[i].introspection`: the RFC 7662 endpoint and how tokengate authenticates to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    /// The endpoint; else discovery's `introspection_endpoint`.
    pub endpoint: Option<String>,
    #[serde(default)]
    pub client_id: String,
    /// `client_secret_basic` (default), `client_secret_post` or `private_key_jwt`.
    pub auth: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    /// PKCS#8 PEM (RSA or P-256) for `private_key_jwt`.
    pub private_key_file: Option<String>,
    /// `json` (default) or `jwt` (RFC 9701).
    pub response: Option<String>,
    pub cache_ttl: Option<String>,
    pub negative_cache_ttl: Option<String>,
    pub timeout: Option<String>,
    pub max_entries: Option<usize>,
}

/// `issuers[i].hmac`: where the shared secret is read from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHmac {
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
}

/// `dev_issuer:`: the embedded issuer for local testing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevIssuer {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub key_file: Option<String>,
    pub token_lifetime: Option<String>,
}

/// `keys:`: JWKS fetch and cache timings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub refresh: Option<String>,
    pub min_refresh: Option<String>,
    pub max_refresh: Option<String>,
    pub refetch_per_minute: Option<u32>,
    pub fetch_timeout: Option<String>,
    pub max_stale: Option<String>,
}

/// `cors:`: who answers CORS, and the policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// `policy` (default) or `upstream`.
    pub mode: Option<String>,
    #[serde(default)]
    pub allow_origins: Vec<String>,
    pub allow_methods: Option<Vec<String>>,
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
}

/// `log:`: format and level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

/// `limits:`: per-client sizes, counts and timeouts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub max_token_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub send_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub max_headers: Option<usize>,
    pub http2_max_concurrent_streams: Option<u32>,
    pub http2_max_send_buffer: Option<usize>,
}
