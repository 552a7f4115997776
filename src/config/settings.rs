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
    /// The public listener's address (`listen:`, or `--listen`); 127.0.0.1:3000 by default.
    pub listen: SocketAddr,
    /// Every issuer whose tokens are accepted, in file order, the dev issuer last.
    pub issuers: Vec<IssuerSettings>,
    /// The embedded token-minting issuer (`dev_issuer:`), for local testing only.
    pub dev_issuer: Option<DevIssuerSettings>,
    /// How JWKS keys are fetched and cached (`keys:`).
    pub keys: KeyTimings,
    /// Who answers CORS (`cors:`); [`Cors::Off`] without the block.
    pub cors: Cors,
    /// Log format and filter (`log:`, or `--log-format`).
    pub log: LogSettings,
    /// Sizes, counts and timeouts per client (`limits:`).
    pub limits: Limits,
    /// How long a stopping server waits for requests in flight; 30s by default.
    pub shutdown_timeout: Duration,
    /// Where verified requests go; `None`: the built-in quickstart routes answer.
    pub upstream: Option<UpstreamSettings>,
    /// The identity headers set from claims, and the headers stripped (`forward:`).
    pub forward: ForwardSettings,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The `routes:` in file order and the `default` rule: which requests need which token.
    pub rules: RuleTable,
    /// How request paths are matched against route patterns (`paths:`).
    pub paths: PathOptions,
    /// The RFC 9728 protected resources: each `resources:` entry in file order, then the
    /// `resource:` that covers every other route and the default. A route's rule names its
    /// resource by position (`route::ResourceBinding::index`). Empty: no metadata served.
    pub resources: Vec<ResourceSettings>,
    /// The verified-token cache (`cache:`).
    pub cache: CacheSettings,
    /// Distinguishes one loaded configuration from the next (connections built for an older
    /// one; the verified-token cache's revisions of changed issuers).
    pub generation: u64,
    /// TLS on the public listener (`tls:`); plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
    /// The admin listener (metrics, health); off unless configured.
    pub admin_listen: Option<SocketAddr>,
    /// `forward_auth:`: the decision endpoint for an ingress; off unless configured.
    pub forward_auth: Option<ForwardAuthSettings>,
    /// DPoP proof checks (`dpop:`, RFC 9449); defaults when absent.
    pub dpop: DpopSettings,
    /// The issuers (exact `issuer` values) an opaque token (anything that is not a compact
    /// JWS) is introspected at, in order (`opaque_tokens:`; the one introspecting issuer by
    /// default). Empty: opaque tokens are refused without a network call.
    pub opaque_tokens: Vec<String>,
    /// `client_certificate:`: the header a trusted TLS-terminating proxy passes the client's
    /// certificate in; `None`: certificates come from tokengate's own TLS listener only.
    pub client_certificate: Option<ClientCertificateSettings>,
}

impl Settings {
    /// Whether any request can come with a client certificate, from tokengate's own TLS
    /// listener (`tls.client_auth` other than off) or from a trusted proxy's header
    /// (`client_certificate:`): what RFC 9728's `tls_client_certificate_bound_access_tokens`
    /// can say. Without one, every certificate-bound token (RFC 8705 §3) is refused.
    pub fn certificate_binding_available(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.client_auth != TlsClientAuth::Off)
            || self.client_certificate.is_some()
    }
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
    /// PEM certificates: the server's, then its chain.
    pub cert: PathBuf,
    /// PEM private key of the server's certificate.
    pub key: PathBuf,
    /// Whether (and how) clients present certificates (`tls.client_auth`, `tls.client_ca`).
    pub client_auth: TlsClientAuth,
}

/// How the TLS listener asks for client certificates (`tls.client_auth` with
/// `tls.client_ca`). A certificate a client presents is what a certificate-bound token
/// (RFC 8705 §3) is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsClientAuth {
    /// None asked for (no `tls.client_ca`, no `tls.client_auth`).
    Off,
    /// `required` (the default with `tls.client_ca`): every client presents a certificate
    /// that chains to a CA in this PEM file, or the handshake fails.
    Required(PathBuf),
    /// `optional`: a client may present none; one that is presented must chain to a CA in
    /// this PEM file, or the handshake fails.
    Optional(PathBuf),
    /// `optional_any`: a client may present none, or any certificate, self-signed included
    /// (RFC 8705 §2.2), as long as it proves it holds the certificate's key in the handshake.
    /// Such a certificate authenticates nobody: it serves only to match certificate-bound
    /// tokens.
    OptionalAny,
}

impl TlsClientAuth {
    /// The name as written in `tls.client_auth` (`off` when none is asked for).
    pub fn name(&self) -> &'static str {
        match self {
            TlsClientAuth::Off => "off",
            TlsClientAuth::Required(_) => "required",
            TlsClientAuth::Optional(_) => "optional",
            TlsClientAuth::OptionalAny => "optional_any",
        }
    }
}

/// `client_certificate:`: the request header in which a TLS-terminating proxy in
/// `trusted_proxies` passes on the certificate its client presented (RFC 8705 §3 behind a
/// proxy). Believed from those peers only; stripped, in every spelling, from every request
/// before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificateSettings {
    /// The header, as configured (lower case: how `http` keeps names).
    pub header: HeaderName,
    /// How its value is written.
    pub format: CertificateHeaderFormat,
}

/// How a proxy writes the client certificate into `client_certificate.header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateHeaderFormat {
    /// RFC 9440 `Client-Cert`: the DER certificate as a Structured Field Byte Sequence
    /// (RFC 8941 §3.3.5), `:BASE64:`.
    Rfc9440,
    /// Envoy's `X-Forwarded-Client-Cert`: `,`-separated elements of `;`-separated `Key=Value`
    /// pairs; the last element (the one the proxy next to tokengate added) is read: its
    /// `Cert` (URL-encoded PEM) and/or `Hash` (hex SHA-256 of the DER).
    Xfcc,
    /// nginx's `$ssl_client_escaped_cert`: the PEM certificate, URL-encoded.
    Nginx,
}

impl CertificateHeaderFormat {
    /// The name as written in `client_certificate.format`.
    pub fn name(self) -> &'static str {
        match self {
            CertificateHeaderFormat::Rfc9440 => "rfc9440",
            CertificateHeaderFormat::Xfcc => "xfcc",
            CertificateHeaderFormat::Nginx => "nginx",
        }
    }
}

/// The verified-token cache (`cache:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// `true` by default.
    pub enabled: bool,
    /// Tokens kept at most (1 to 10000000; 100000 by default), about 1.5 KiB each.
    pub max_entries: usize,
}

/// Where verified requests go (`upstream:`, or `--upstream`).
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The base URL (http or https, no query) request paths are appended to.
    pub url: Url,
    /// Speak only HTTP/2 to the upstream.
    pub http2: bool,
    /// Until the response headers arrive.
    pub timeout: Duration,
    /// To open a connection (TCP and TLS); 5s by default.
    pub connect_timeout: Duration,
    /// An idle pooled connection is closed after this long; 90s by default.
    pub pool_idle_timeout: Duration,
    /// Idle connections the shared pool keeps (beyond them, a finished connection closes).
    pub pool_max_idle: usize,
    /// Send the client's `Host` (sidecar), or the upstream's authority.
    pub preserve_host: bool,
    /// PEM CA certificates trusted for an https upstream, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// The TLS server name (SNI and certificate check) when it differs from the URL's host.
    pub server_name: Option<String>,
}

/// What the upstream learns of the caller (`forward:`).
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    /// The headers set from claims: four `X-Auth-*` headers by default.
    pub headers: Vec<ClaimHeader>,
    /// Lower-case, `_` written as `-`: compared with normalised request header names.
    pub strip_prefix: String,
    /// Joins the elements of an array claim ([`ArrayFormat::Joined`]); a space by default.
    pub separator: String,
    /// A header carrying the claims exactly as the issuer signed them (base64url JSON).
    pub payload_header: Option<HeaderName>,
    /// Remove `Authorization` before forwarding (the upstream then never sees the token).
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
    /// The header set on the forwarded request.
    pub name: HeaderName,
    /// Claim paths; the first one present is used.
    pub sources: Vec<Vec<String>>,
    /// How an array claim is written.
    pub array_format: ArrayFormat,
}

/// One RFC 9728 protected resource: its metadata and the routes it covers.
#[derive(Debug, Clone)]
pub struct ResourceSettings {
    /// The resource identifier as written (an http(s) URL without query or fragment); the
    /// metadata's `resource` member, byte for byte (RFC 9728 §3.3).
    pub id: String,
    /// Authorization server issuer identifiers listed in the metadata (§2).
    pub authorization_servers: Vec<String>,
    /// Scopes listed in the metadata (§2); for a `resources:` entry that lists none, every
    /// scope its routes name.
    pub scopes_supported: Vec<String>,
    /// `resource_name` (§2), a human-readable name.
    pub resource_name: Option<String>,
    /// `resource_documentation` (§2), an http(s) URL.
    pub resource_documentation: Option<String>,
    /// An MCP server (`mcp: true`): `audiences` required, `Authorization` stripped by default.
    pub mcp: bool,
    /// A token on the resource's routes must carry one of these in `aud` (RFC 8707).
    pub audiences: Vec<String>,
    /// Where the metadata is served on this listener: `/.well-known/oauth-protected-resource`
    /// followed by the identifier's path (§3.1).
    pub metadata_path: String,
    /// The absolute URL named in `resource_metadata="..."` (§5.1).
    pub metadata_url: String,
    /// Also served at `/.well-known/oauth-protected-resource` (`metadata_at_root: true`), for
    /// clients that look only at the root.
    pub metadata_at_root: bool,
    /// Which routes it covers.
    pub covers: Coverage,
}

/// The routes a protected resource covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// `resources[i].routes`: the `routes:` entries whose `path` is one of these, as written.
    Routes(Vec<String>),
    /// `resource:`: every route no `resources:` entry covers, and the default rule.
    Rest,
}

/// One trusted issuer (`issuers[i]`, or the dev issuer). Compared whole on a reload: an
/// issuer whose settings are equal keeps its cached verified tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerSettings {
    /// Compared byte for byte with the token's `iss`.
    pub issuer: String,
    /// A token's `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// The allow-list; a key only ever verifies the members that fit its type.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`; at most 5m, 60s by default.
    pub leeway: Duration,
    /// `max_lifetime`: a token whose `exp` lies further than this beyond now (plus leeway),
    /// or beyond its own `iat`, is refused (`token_lifetime_too_long`). `None`: no cap.
    pub max_lifetime: Option<Duration>,
    /// Where the verification keys come from.
    pub key_source: KeySource,
    /// Allow `http://` for the issuer and `jwks_uri` (local testing only).
    pub allow_http: bool,
    /// Claim rules every token of this issuer must meet.
    pub claims: Vec<ClaimRule>,
    /// RFC 9068: `typ` must be `at+jwt` and its required claims present.
    pub require_rfc9068: bool,
    /// RFC 7662 introspection of this issuer's opaque tokens (`introspection:`).
    pub introspection: Option<IntrospectionSettings>,
    /// `introspect_jwts`: a JWT of this issuer that verifies locally is also introspected
    /// (so a revoked one is refused before its `exp`). Needs `introspection`.
    pub introspect_jwts: bool,
}

/// RFC 7662 token introspection for one issuer (`issuers[i].introspection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    /// The introspection endpoint; `None`: discovery's `introspection_endpoint`.
    pub endpoint: Option<Url>,
    /// tokengate's client id at the authorization server (also the `aud` of RFC 9701 answers).
    pub client_id: String,
    /// How tokengate authenticates to the endpoint (RFC 7662 §2.1 requires it).
    pub auth: ClientAuth,
    /// Plain JSON (RFC 7662 §2.2) or a signed JWT (RFC 9701).
    pub response: IntrospectionResponse,
    /// An active answer is reused for at most this long (and never past its `exp`); 60s by
    /// default.
    pub cache_ttl: Duration,
    /// An inactive answer is reused for this long; 10s by default (0: not cached).
    pub negative_cache_ttl: Duration,
    /// One introspection call, connect to last byte; 5s by default.
    pub timeout: Duration,
    /// Answers (active and inactive) cached at most; 10000 by default.
    pub max_entries: usize,
}

/// RFC 7662 §2.1 client authentication to the introspection endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// RFC 6749 §2.3.1 HTTP Basic, id and secret form-urlencoded first.
    ClientSecretBasic(Secret),
    /// RFC 6749 §2.3.1 `client_id` and `client_secret` in the form body.
    ClientSecretPost(Secret),
    /// RFC 7523 §2.2 / OIDC Core §9: a JWT assertion signed with this key.
    PrivateKeyJwt(Secret),
}

/// The JWS algorithm a PEM private key signs `private_key_jwt` assertions with: `RS256` for
/// an RSA key, `ES256` for a P-256 key; `None` for anything else.
pub fn signing_algorithm(pem: &[u8]) -> Option<jsonwebtoken::Algorithm> {
    if jsonwebtoken::EncodingKey::from_rsa_pem(pem).is_ok() {
        Some(jsonwebtoken::Algorithm::RS256)
    } else if jsonwebtoken::EncodingKey::from_ec_pem(pem).is_ok() {
        Some(jsonwebtoken::Algorithm::ES256)
    } else {
        None
    }
}

/// The introspection answer's format (`response:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionResponse {
    /// `application/json` (RFC 7662 §2.2).
    Json,
    /// `application/token-introspection+jwt`, signed by the issuer (RFC 9701).
    Jwt,
}

/// A secret read at load from a file or an environment variable. Its `Debug` names where it
/// came from and its length, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// `file PATH` or `env NAME`, for messages.
    pub origin: String,
    /// The secret itself; never logged.
    pub bytes: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret({}, {} bytes, redacted)",
            self.origin,
            self.bytes.len()
        )
    }
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// OIDC discovery on the issuer, then RFC 8414 metadata.
    Discovery,
    /// `jwks_uri`: keys fetched from this URL and cached per [`KeyTimings`].
    JwksUri(Url),
    /// `jwks_file`: a JWKS read from this file.
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
    /// The secret itself; never logged.
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

/// The embedded dev issuer (`dev_issuer:`), which mints tokens on a loopback listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevIssuerSettings {
    /// The `iss` of minted tokens; `urn:tokengate:dev` by default.
    pub issuer: String,
    /// The `aud` of minted tokens; `api://default` by default.
    pub audience: String,
    /// A PKCS#8 PEM RSA key to sign with, made and written there when the file does not
    /// exist; a new key each start when `None`.
    pub key_file: Option<PathBuf>,
    /// Lifetime of minted tokens, 1s to 1d; 1h by default.
    pub token_lifetime: Duration,
}

/// How keys are fetched and kept (`keys:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimings {
    /// Cache lifetime when the JWKS response says nothing.
    pub refresh: Duration,
    /// The shortest a JWKS response's `Cache-Control`/`Expires` may make its lifetime.
    pub min_refresh: Duration,
    /// The longest a JWKS response's `Cache-Control`/`Expires` may make its lifetime.
    pub max_refresh: Duration,
    /// On-demand refetches (a token with an unknown `kid`) per minute, 1 to 600; 10 by default.
    pub refetch_per_minute: u32,
    /// One key or discovery fetch, and how long a request waits for one; above zero.
    pub fetch_timeout: Duration,
    /// A failed fetch never replaces good keys: they serve until this long past their lifetime.
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

/// tokengate's CORS policy (`cors:` with `mode: policy`): the response headers, ready to send.
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Origins answered, compared byte for byte with the request's `Origin`.
    pub allow_origins: AllowedOrigins,
    /// `Access-Control-Allow-Methods`, the methods joined by commas.
    pub allow_methods: HeaderValue,
    /// `None`: reflect the preflight's `Access-Control-Request-Headers`, as `cors()` does.
    pub allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers`; by default `WWW-Authenticate`, `Retry-After` and `X-Request-Id`.
    pub expose_headers: HeaderValue,
    /// `Access-Control-Max-Age` in seconds; not sent when `None`.
    pub max_age: Option<HeaderValue>,
    /// Send `Access-Control-Allow-Credentials: true` (never with a wildcard origin).
    pub allow_credentials: bool,
    /// The methods of [`CorsSettings::allow_methods`], parsed.
    pub methods: Vec<Method>,
}

/// The origins a CORS policy answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `["*"]`: any origin (never with credentials).
    Any,
    /// The listed origins, each as a browser sends it.
    List(Vec<HeaderValue>),
}

/// How log records are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging (`log:`).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Text (the default) or JSON lines.
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
    /// Bytes of one bearer token, 1024 to 1048576; 16384 by default. A longer token is
    /// refused before it is parsed.
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
    /// The issuer whose `issuer` is exactly `iss` (byte for byte), if one is configured.
    pub fn issuer(&self, iss: &str) -> Option<&IssuerSettings> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }
}

/// `dpop:`: how DPoP proofs are checked (RFC 9449 §4.3, §8, §11.1).
#[derive(Debug, Clone, PartialEq)]
pub struct DpopSettings {
    /// The origin (`scheme://host[:port]`, RFC 6454 serialisation) clients reach tokengate
    /// at; a proof's `htu` must be this plus the request's path. `dpop.external_url`, else
    /// the origin of `resource.id` (or of the `resources:` ids when they share one); `None`:
    /// DPoP proofs cannot be checked, so DPoP-bound
    /// tokens are refused (forward-auth takes the origin from the ingress instead).
    pub external_url: Option<String>,
    /// Algorithms a proof may be signed with (asymmetric only); ES256, EdDSA, PS256, RS256.
    pub algorithms: Vec<Algorithm>,
    /// How old a proof's `iat` may be; 60 s by default.
    pub iat_past: Duration,
    /// How far in the future a proof's `iat` may be (clock skew); 5 s by default.
    pub iat_future: Duration,
    /// Server nonces (§8); off when `None`.
    pub nonce: Option<NonceSettings>,
    /// Where used proofs are remembered (§11.1).
    pub replay: ReplaySettings,
}

impl Default for DpopSettings {
    fn default() -> Self {
        DpopSettings {
            external_url: None,
            algorithms: vec![
                Algorithm::ES256,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::RS256,
            ],
            iat_past: Duration::from_secs(60),
            iat_future: Duration::from_secs(5),
            nonce: None,
            replay: ReplaySettings::Memory {
                max_entries: 1_000_000,
            },
        }
    }
}

impl DpopSettings {
    /// `algs="..."` of the DPoP challenge (RFC 9449 §7.1): the algorithm names, space-separated.
    pub fn algs(&self) -> String {
        self.algorithms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `dpop.nonce`: nonces derived from a shared secret and the time step, so every replica
/// issues and accepts the same ones without talking to the others.
#[derive(Debug, Clone, PartialEq)]
pub struct NonceSettings {
    /// At least 32 bytes, from `secret_file` or `secret_env`.
    pub secret: Secret,
    /// One time step; a nonce is accepted during its step and the next.
    pub lifetime: Duration,
}

/// `dpop.replay`: the store of used proofs. Its `Debug` never shows the Redis URL's
/// password.
#[derive(Clone, PartialEq)]
pub enum ReplaySettings {
    /// In this process only (bounded; when full of unexpired proofs, new proofs get 503).
    Memory { max_entries: usize },
    /// One Redis shared by every replica: `SET key 1 NX EX ttl`.
    Redis {
        /// `redis://[user:password@]host[:port][/db]`.
        url: String,
        /// How long one store round trip may take before the request gets 503.
        timeout: Duration,
        /// Prepended to every key.
        key_prefix: String,
    },
}

impl std::fmt::Debug for ReplaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplaySettings::Memory { max_entries } => f
                .debug_struct("Memory")
                .field("max_entries", max_entries)
                .finish(),
            ReplaySettings::Redis {
                url,
                timeout,
                key_prefix,
            } => {
                let shown = match Url::parse(url) {
                    Ok(mut u) if u.password().is_some() => {
                        let _ = u.set_password(Some("redacted"));
                        u.to_string()
                    }
                    Ok(u) => u.to_string(),
                    Err(_) => "(unparsable)".to_owned(),
                };
                f.debug_struct("Redis")
                    .field("url", &shown)
                    .field("timeout", timeout)
                    .field("key_prefix", key_prefix)
                    .finish()
            }
        }
    }
}
