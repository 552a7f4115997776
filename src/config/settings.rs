//! Runtime configuration: everything parsed, checked and ready for the hot path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::algorithm::Algorithm;
use http::{HeaderName, HeaderValue, Method};
use url::Url;

use ipnet::IpNet;

use crate::claims::ClaimRule;
use crate::header_name::HeaderPattern;
use crate::route::{PathOptions, RuleTable};

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file this came from, for messages.
    pub source: PathBuf,
    pub listen: SocketAddr,
    pub issuers: Vec<IssuerSettings>,
    pub dev_issuer: Option<DevIssuerSettings>,
    pub keys: KeyTimings,
    pub cors: Cors,
    pub log: LogSettings,
    pub limits: Limits,
    pub shutdown_timeout: Duration,
    /// Where verified requests go; `None`: the built-in quickstart routes answer.
    pub upstream: Option<UpstreamSettings>,
    pub forward: ForwardSettings,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    pub rules: RuleTable,
    pub paths: PathOptions,
    pub resource: Option<ResourceSettings>,
    pub cache: CacheSettings,
    /// Distinguishes one loaded configuration from the next (verified-token cache keys).
    pub generation: u64,
    pub tls: Option<TlsSettings>,
    /// The admin listener (metrics, health); off unless configured.
    pub admin_listen: Option<SocketAddr>,
    /// `forward_auth:`: the decision endpoint for an ingress; off unless configured.
    pub forward_auth: Option<ForwardAuthSettings>,
}

/// `forward_auth:`: where an ingress asks tokengate for a decision, how it says what the
/// original request was, and which peers may say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthSettings {
    pub mode: ForwardAuthMode,
    /// A canonical absolute path (`/_auth` by default). For nginx, Traefik and Caddy the
    /// decision path itself (any query ignored); for Envoy the prefix its `ext_authz`
    /// `path_prefix` puts before the original path, which follows it.
    pub path: String,
    /// Only a TCP peer in one of these networks may ask; every other gets 403. Never empty,
    /// never `0.0.0.0/0` or `::/0`.
    pub trusted_proxies: Vec<IpNet>,
}

/// Which ingress asks, and so which headers carry the original request
/// (`forward_auth.mode`; configured, never guessed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuthMode {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI`, as the module's
    /// documentation sets them.
    Nginx,
    /// Traefik `ForwardAuth`: `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri`.
    Traefik,
    /// Caddy `forward_auth`: the same four `X-Forwarded-*` headers as Traefik.
    Caddy,
    /// Envoy `ext_authz` (HTTP service): the request's own method, and the path after
    /// `path_prefix`.
    Envoy,
}

impl ForwardAuthMode {
    /// The name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ForwardAuthMode::Nginx => "nginx",
            ForwardAuthMode::Traefik => "traefik",
            ForwardAuthMode::Caddy => "caddy",
            ForwardAuthMode::Envoy => "envoy",
        }
    }
}

/// TLS on the listener (`tls:`); files are read at start and on every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// The verified-token cache (`cache:`).
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub enabled: bool,
    pub max_entries: usize,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub url: Url,
    pub http2: bool,
    /// Until the response headers arrive.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// Idle connections the shared pool keeps (beyond them, a finished connection closes).
    pub pool_max_idle: usize,
    /// Send the client's `Host` (sidecar), or the upstream's authority.
    pub preserve_host: bool,
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub headers: Vec<ClaimHeader>,
    /// Lower-case, `_` written as `-`: compared with normalised request header names.
    pub strip_prefix: String,
    pub separator: String,
    pub payload_header: Option<HeaderName>,
    pub strip_authorization: bool,
    /// Identity headers other auth proxies and platforms set, stripped from every request:
    /// [`DEFAULT_FOREIGN_IDENTITY_HEADERS`] plus `forward.strip_headers`.
    pub foreign_identity: Vec<HeaderPattern>,
    /// `forward.trusted_identity_headers`: foreign identity headers kept when the peer is in
    /// `trusted_proxies` (a chain where an earlier hop sets them), lower-cased as written:
    /// only that spelling passes.
    pub trusted_identity: Vec<String>,
}

/// The identity headers of other auth proxies and platforms (`Prefix*` or a name, compared
/// after lower-casing and reading `_` as `-`). An upstream built behind one of them trusts
/// these, so a client must never be able to send them.
pub const DEFAULT_FOREIGN_IDENTITY_HEADERS: &[&str] = &[
    // oauth2-proxy
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-*",
    // Apache httpd, CGI, Authelia, many SSO front ends
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Remote-*",
    "X-User*",
    "X-Authenticated-*",
    "X-Id-Token",
    "X-Jwt-*",
    // mod_auth_openidc
    "OIDC-Claim-*",
    "OIDC-Access-Token*",
    "OIDC-Id-Token*",
    // Kong
    "X-Consumer-*",
    "X-Credential-*",
    "X-Anonymous-Consumer",
    // Pomerium
    "X-Pomerium-*",
    // Azure App Service authentication
    "X-MS-Client-Principal*",
    "X-MS-Token-*",
    // AWS Application Load Balancer
    "X-Amzn-Oidc-*",
    // Cloudflare Access
    "Cf-Access-*",
    // Google Cloud IAP
    "X-Goog-Authenticated-User-*",
    "X-Goog-Iap-Jwt-Assertion",
];

/// How an array claim becomes a header value (`forward.array_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrayFormat {
    /// Elements joined by `forward.separator`; an element containing the separator (or a
    /// control character) withholds the header, since it would split differently.
    #[default]
    Joined,
    /// A compact JSON array.
    Json,
}

/// A header tokengate sets from the verified claims.
#[derive(Debug, Clone)]
pub struct ClaimHeader {
    pub name: HeaderName,
    /// Claim paths; the first one present is used.
    pub sources: Vec<Vec<String>>,
    pub array_format: ArrayFormat,
}

/// RFC 9728 protected resource metadata.
#[derive(Debug, Clone)]
pub struct ResourceSettings {
    pub id: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// Where the metadata is served on this listener.
    pub metadata_path: String,
    /// The absolute URL named in `resource_metadata="..."`.
    pub metadata_url: String,
}

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// Compared byte for byte with the token's `iss`.
    pub issuer: String,
    pub audiences: Vec<String>,
    /// The allow-list; a key only ever verifies the members that fit its type.
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// `max_lifetime`: a token whose `exp` lies further than this beyond now (plus leeway),
    /// or beyond its own `iat`, is refused (`token_lifetime_too_long`). `None`: no cap.
    pub max_lifetime: Option<Duration>,
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
    /// `hmac:`: a shared secret for HS256/384/512. An issuer with it takes no key from a
    /// JWKS, and one without it never verifies an HS algorithm: HMAC or asymmetric, never both.
    Hmac(HmacSecret),
}

/// A shared HMAC secret, read at load from `secret_file` or `secret_env`. Its `Debug` names
/// where it came from and its length, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacSecret {
    /// `file PATH` or `env NAME`, for messages.
    pub origin: String,
    pub bytes: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Hmac({}, {} bytes, secret redacted)",
            self.origin,
            self.bytes.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevIssuerSettings {
    pub issuer: String,
    pub audience: String,
    pub key_file: Option<PathBuf>,
    pub token_lifetime: Duration,
}

/// How keys are fetched and kept (`keys:`).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Who answers CORS (`cors:`).
#[derive(Debug, Clone, Default)]
pub enum Cors {
    /// No `cors:`: preflights need a token like any request, and the upstream's CORS headers
    /// pass through.
    #[default]
    Off,
    /// tokengate's policy is the only one: preflights are answered here, and every
    /// `Access-Control-*` header of the upstream's responses is replaced.
    Policy(Box<CorsSettings>),
    /// `mode: upstream`: well-formed preflights are forwarded without a token or identity,
    /// and the upstream's CORS headers pass through.
    Upstream,
}

impl Cors {
    /// tokengate's own policy, when it has one.
    pub fn policy(&self) -> Option<&CorsSettings> {
        match self {
            Cors::Policy(p) => Some(p),
            Cors::Off | Cors::Upstream => None,
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

/// What one client may make tokengate spend (`limits:`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long the request head may take to arrive (and an idle HTTP/1.1 connection waits).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes of request head (HTTP/1.1) or header list (HTTP/2); beyond it, 431.
    pub max_header_bytes: usize,
    /// Header fields in one request, either protocol; beyond it, 431.
    pub max_headers: usize,
    pub max_token_bytes: usize,
    /// Beyond this many open connections, new ones wait in the listen backlog. The server
    /// may use fewer when the open-files limit cannot hold this many (see `crate::fdlimit`).
    pub max_connections: usize,
    /// A response that the client lets make no write progress for this long is abandoned:
    /// the HTTP/1.1 connection is closed, the HTTP/2 stream's upstream released and, when
    /// no stream of the connection progresses, the connection closed.
    pub send_timeout: Duration,
    /// A request body that makes no progress for this long is abandoned (408 when no
    /// response has been sent yet).
    pub body_read_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub http2_max_concurrent_streams: u32,
    /// Bytes of response data buffered per HTTP/2 stream while the client's flow-control
    /// window or socket is full.
    pub http2_max_send_buffer: usize,
}

impl Settings {
    pub fn issuer(&self, iss: &str) -> Option<&IssuerSettings> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }
}
