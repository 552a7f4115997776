//! Stage 5: header surgery, strip before inject, on every path that reaches an upstream.
//!
//! Stripped from requests: hop-by-hop headers and the names listed in `Connection` (RFC 9110
//! §7.6.1), except the end-to-end headers tokengate sets or decides on (`CONNECTION_PROOF`);
//! every configured identity header and every header with the identity prefix; the identity
//! headers of other auth proxies and platforms (`forward.strip_headers` and the defaults);
//! method overrides; `X-Forwarded-*`, `Forwarded`, `X-Real-IP`, `X-Original-URL` and kin
//! unless the peer is a trusted proxy. Names are compared after lower-casing and reading `_`
//! as `-` (`X_Auth_Subject` is `X-Auth-Subject` to many upstreams). Then tokengate adds its own.
//! Trailer sections go through the same rules ([`TrailerFilter`]), and the fields RFC 9110
//! §6.5.1 keeps out of trailers are dropped. Nothing a client sends can look like something
//! tokengate said.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, COOKIE, HOST, TE, TRAILER, UPGRADE,
};
use http::HeaderMap;
use ipnet::IpNet;
use serde_json::Value;
use tracing::warn;

use crate::authn::VerifiedToken;
use crate::authz::Permit;
use crate::claims;
use crate::config::{ArrayFormat, ClaimHeader, ForwardSettings};
use crate::header_name::{normalize, normalized_eq, normalized_starts_with, HeaderPattern};

/// RFC 9110 §7.6.1, plus the proxy-only headers, `HTTP2-Settings` (RFC 7540 §3.2: only for
/// an `h2c` upgrade, which is never forwarded) and `Expect` (tokengate answers
/// `100-continue` itself by reading the body).
static HOP_BY_HOP: [HeaderName; 10] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    TE,
    http::header::TRANSFER_ENCODING,
    UPGRADE,
    HeaderName::from_static("http2-settings"),
    http::header::EXPECT,
];

/// End-to-end headers tokengate sets or decides on. RFC 9110 §7.6.1 lets `Connection` name
/// only hop-by-hop fields; naming one of these must not make the upstream lose it (the
/// request id, the client's `Host`, the forwarding chain) or change the framing.
static CONNECTION_PROOF: [HeaderName; 6] = [
    HOST,
    CONTENT_LENGTH,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

/// Never forwarded, from anyone: headers that ask an upstream to treat the request as another
/// method than the one the rules saw, and `Proxy`, which CGI turns into `HTTP_PROXY` for the
/// upstream's own outgoing requests (httpoxy, CVE-2016-5385).
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "proxy",
];

/// Headers tokengate sets itself whatever the peer: every other spelling of them is removed
/// too (an upstream reading `_` as `-` would otherwise see two request ids, one the client's).
const SET_BY_TOKENGATE: &[&str] = &["x-request-id", "x-auth-token-binding"];

/// Proofs of possession meant for tokengate alone: a DPoP proof (RFC 9449 §4.1) is bound to
/// tokengate's URL and is never of use (or to be trusted) further on.
const PROOFS: &[&str] = &["dpop"];

/// `X-Auth-Token-Binding`: what a forwarded token was bound to and proven with (`dpop`,
/// `mtls`, `dpop mtls`); absent for a bearer token.
pub static X_AUTH_TOKEN_BINDING: HeaderName = HeaderName::from_static("x-auth-token-binding");

/// Headers that describe the client connection; believed only from trusted proxies.
const FORWARDING_PREFIX: &str = "x-forwarded-";
const FORWARDING: &[&str] = &[
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-rewrite-url",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-host",
    "x-original-host",
];

/// Fields that must not be sent in a trailer section, or that a recipient would act on as if
/// they were headers (RFC 9110 §6.5.1: framing, routing, request modifiers, authentication,
/// response control data, content metadata), plus what tokengate itself sets. Names are in
/// normal form; `*` ends a prefix.
const NOT_IN_TRAILERS: &[&str] = &[
    "content-*",
    "transfer-encoding",
    "trailer",
    "host",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "if-*",
    "te",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
    "access-control-*",
    "x-request-id",
    "proxy-authentication-info",
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything header surgery needs, prepared once at load.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    /// Normalised names of the headers tokengate sets from claims.
    identity: Vec<String>,
    prefix: String,
    claim_headers: Vec<ClaimHeader>,
    separator: String,
    payload_header: Option<HeaderName>,
    strip_authorization: bool,
    trusted_proxies: Vec<IpNet>,
    /// Other systems' identity headers, stripped from every request.
    foreign: Vec<HeaderPattern>,
    /// Of those, the ones kept when a trusted proxy sends them (normal form).
    trusted_identity: Vec<String>,
    /// `client_certificate.header` (normal form): read from trusted proxies before this
    /// policy runs, then removed from every request, whoever sent it.
    certificate_header: Option<String>,
}

/// What the request said about itself before stripping (its `Host`, and whether it came
/// from a trusted proxy), for the `X-Forwarded-*` headers tokengate writes. (Not the CORS
/// `Origin`.)
pub struct ForwardedFrom {
    /// The client's `Host` (for `X-Forwarded-Host`), before any rewriting.
    pub host: Option<HeaderValue>,
    /// The TCP peer is in `trusted_proxies`: its `X-Forwarded-*` chain is extended, not
    /// replaced.
    pub trusted_peer: bool,
}

impl HeaderPolicy {
    /// The policy for `forward:` (identity headers, prefix, foreign and trusted identity
    /// names) and the `trusted_proxies` networks.
    pub fn new(forward: &ForwardSettings, trusted_proxies: &[IpNet]) -> HeaderPolicy {
        let mut identity: Vec<String> = forward
            .headers
            .iter()
            .map(|h| normalize(h.name.as_str()))
            .collect();
        if let Some(p) = &forward.payload_header {
            identity.push(normalize(p.as_str()));
        }
        HeaderPolicy {
            identity,
            prefix: forward.strip_prefix.clone(),
            claim_headers: forward.headers.clone(),
            separator: forward.separator.clone(),
            payload_header: forward.payload_header.clone(),
            strip_authorization: forward.strip_authorization,
            trusted_proxies: trusted_proxies.to_vec(),
            foreign: forward.foreign_identity.clone(),
            trusted_identity: forward.trusted_identity.clone(),
            certificate_header: None,
        }
    }

    /// This policy, also removing `header` (the `client_certificate` header a trusted proxy
    /// passes the client's certificate in) in every spelling from every request, trusted
    /// peer or not: the certificate is tokengate's business, and an upstream must not take
    /// a client's copy of it for the proxy's.
    pub fn stripping_certificate_header(mut self, header: Option<&HeaderName>) -> HeaderPolicy {
        self.certificate_header = header.map(|h| normalize(h.as_str()));
        self
    }

    /// Whether `peer` is in `trusted_proxies`. An IPv4 peer reaching a dual-stack listener as
    /// `::ffff:a.b.c.d` is compared as `a.b.c.d`, so an IPv4 entry matches it.
    pub fn is_trusted(&self, peer: &SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The origin (`scheme://host[:port]`, RFC 6454 serialisation) a trusted proxy says the
    /// client used: exactly one `X-Forwarded-Proto` (`http` or `https`) and exactly one
    /// `X-Forwarded-Host` of one host. `None` from any other peer, or when either is absent,
    /// repeated or a list: the client's own `Host` is never taken for it.
    pub fn reported_origin(&self, headers: &HeaderMap, peer: &SocketAddr) -> Option<String> {
        if !self.is_trusted(peer) {
            return None;
        }
        let one = |name: &HeaderName| {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(v), None) => v.to_str().ok(),
                _ => None,
            }
        };
        crate::route::origin(
            one(&X_FORWARDED_PROTO)?.trim(),
            one(&X_FORWARDED_HOST)?.trim(),
        )
    }

    /// Removes everything the upstream must not take from the client. `websocket` keeps the
    /// `Connection: upgrade` / `Upgrade: websocket` pair of a WebSocket handshake; every other
    /// `Upgrade` (h2c included) is removed, so the request is an ordinary one (RFC 9110 §7.8).
    /// Several `Cookie` fields (HTTP/2 splits them) become one, joined with `"; "` (RFC 9113
    /// §8.2.3), as an HTTP/1.1 upstream expects.
    pub fn strip_request(
        &self,
        headers: &mut HeaderMap,
        peer: &SocketAddr,
        websocket: bool,
    ) -> ForwardedFrom {
        let trusted_peer = self.is_trusted(peer);
        let host = headers.get(HOST).cloned();
        let wants_trailers = lists_token(headers, &TE, "trailers");
        remove_connection_listed(headers);
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| self.strips(name, trusted_peer))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
        if self.strip_authorization {
            headers.remove(http::header::AUTHORIZATION);
        }
        join_cookies(headers);
        self.filter_trailer_declaration(headers);
        if wants_trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
        if websocket {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        }
        ForwardedFrom { host, trusted_peer }
    }

    /// Whether a request header of this name is removed before forwarding.
    fn strips(&self, name: &HeaderName, trusted_peer: bool) -> bool {
        let n = name.as_str();
        HOP_BY_HOP.contains(name)
            || METHOD_OVERRIDES.iter().any(|m| normalized_eq(n, m))
            || SET_BY_TOKENGATE.iter().any(|m| normalized_eq(n, m))
            || PROOFS.iter().any(|m| normalized_eq(n, m))
            || self
                .certificate_header
                .as_deref()
                .is_some_and(|c| normalized_eq(n, c))
            || self.is_identity(n)
            // A trusted proxy's identity headers pass in the spelling configured only: it sets
            // that one, so another spelling beside it is the client's.
            || (self.is_foreign_identity(n)
                && !(trusted_peer && self.trusted_identity.iter().any(|t| n == t)))
            // From a trusted proxy, forwarding headers are believed under their own
            // spelling only: `X_Forwarded_For` beside tokengate's `X-Forwarded-For` would reach
            // an upstream that reads `_` as `-` as a second, unvouched-for value.
            || (is_forwarding(n) && (!trusted_peer || n.contains('_')))
    }

    /// Whether a request trailer field may reach the upstream: it must survive the header
    /// rules as from an untrusted peer (trailers never carry a proxy chain's values) and not
    /// be one RFC 9110 §6.5.1 keeps out of trailers.
    pub fn keeps_request_trailer(&self, name: &HeaderName) -> bool {
        !self.strips(name, false) && keeps_response_trailer(name)
    }

    /// Rewrites a request's `Trailer` declaration to the fields that may be forwarded, and
    /// removes it when none may.
    fn filter_trailer_declaration(&self, headers: &mut HeaderMap) {
        filter_declaration(headers, |name| self.keeps_request_trailer(name));
    }

    /// Adds `X-Forwarded-For/Proto/Host`, `X-Request-Id` and, for a verified token, the
    /// claims headers. A claims header that cannot be sent unambiguously is withheld, with a
    /// warning naming the claim and `request_id`.
    pub fn inject(
        &self,
        headers: &mut HeaderMap,
        origin: &ForwardedFrom,
        peer: &SocketAddr,
        proto: &'static str,
        permit: &Permit,
        request_id: &HeaderValue,
    ) {
        let peer_ip = peer.ip().to_canonical().to_string();
        // A trusted proxy's chain is every X-Forwarded-For line it sent, in order (HAProxy
        // adds a line of its own after the client's); any line that is not text voids it.
        let existing = origin
            .trusted_peer
            .then(|| {
                headers
                    .get_all(&X_FORWARDED_FOR)
                    .iter()
                    .map(|v| v.to_str().map(str::trim))
                    .collect::<Result<Vec<&str>, _>>()
                    .ok()
            })
            .flatten()
            .map(|lines| {
                lines
                    .into_iter()
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|chain| !chain.is_empty());
        let chain = match existing {
            Some(existing) => format!("{existing}, {peer_ip}"),
            None => peer_ip,
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        if !(origin.trusted_peer && headers.contains_key(&X_FORWARDED_PROTO)) {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        }
        if !(origin.trusted_peer && headers.contains_key(&X_FORWARDED_HOST)) {
            match &origin.host {
                Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host.clone()),
                None => headers.remove(&X_FORWARDED_HOST),
            };
        }
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        let Some(token) = permit.token() else { return };
        if let Some(binding) = token.confirmation().name() {
            headers.insert(
                X_AUTH_TOKEN_BINDING.clone(),
                HeaderValue::from_static(binding),
            );
            // RFC 9449 §7.1's scheme is between the client and tokengate: the proof was
            // checked here, and the upstream gets the token under the scheme it knows.
            as_bearer(headers);
        }
        // Rendered once per verified token; a cached token reuses them.
        let rendered = token.forward_headers.get_or_init(|| self.render(token));
        for (name, value) in rendered {
            match value {
                Some(value) => {
                    headers.insert(name.clone(), value.clone());
                }
                None => self.warn_withheld(name, token, request_id),
            }
        }
    }

    /// The identity headers of a forward-auth allow: every claims header and the payload
    /// header, in configuration order, each with the value [`HeaderPolicy::inject`] would
    /// send, or an empty value where it would send none (the claim is absent, the value is
    /// withheld as ambiguous, or the caller is anonymous). An ingress that copies these
    /// names onto the upstream request so always overwrites what the client sent under them.
    pub fn identity_answer(
        &self,
        permit: &Permit,
        request_id: &HeaderValue,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let names = self
            .claim_headers
            .iter()
            .map(|h| &h.name)
            .chain(self.payload_header.as_ref());
        let binding = permit
            .token()
            .and_then(|t| t.confirmation().name())
            .unwrap_or("");
        let binding = (
            X_AUTH_TOKEN_BINDING.clone(),
            HeaderValue::from_static(binding),
        );
        let rendered = permit.token().map(|token| {
            (
                token,
                token.forward_headers.get_or_init(|| self.render(token)),
            )
        });
        names
            .map(|name| {
                let value = rendered.and_then(|(token, rendered)| {
                    match rendered.iter().find(|(n, _)| n == name) {
                        Some((_, Some(value))) => Some(value.clone()),
                        Some((_, None)) => {
                            self.warn_withheld(name, token, request_id);
                            None
                        }
                        None => None,
                    }
                });
                (
                    name.clone(),
                    value.unwrap_or_else(|| HeaderValue::from_static("")),
                )
            })
            .chain([binding])
            .collect()
    }

    fn warn_withheld(&self, name: &HeaderName, token: &VerifiedToken, request_id: &HeaderValue) {
        let claim = self
            .claim_headers
            .iter()
            .find(|h| h.name == *name)
            .and_then(|h| {
                let claims = token.claims();
                h.sources
                    .iter()
                    .find(|path| claims::lookup(&claims, path).is_some())
                    .map(|path| path.join("."))
            })
            .unwrap_or_default();
        warn!(
            request_id = request_id.to_str().unwrap_or("-"),
            header = %name,
            claim,
            issuer = %crate::logsafe::Escaped(&token.issuer),
            "claim header not sent: an element contains the separator or the value a control character, so the upstream could read it differently (forward.array_format: json sends arrays unambiguously)"
        );
    }

    /// The claims headers (and payload header) for one verified token; `None` marks a header
    /// withheld because its value would be ambiguous.
    fn render(&self, token: &VerifiedToken) -> Vec<(HeaderName, Option<HeaderValue>)> {
        let mut out = Vec::with_capacity(self.claim_headers.len() + 1);
        let token_claims = token.claims();
        for header in &self.claim_headers {
            let Some(value) = header
                .sources
                .iter()
                .find_map(|path| claims::lookup(&token_claims, path))
            else {
                continue;
            };
            let value = render(value, &self.separator, header.array_format)
                .and_then(|text| header_value(&text));
            out.push((header.name.clone(), value));
        }
        if let Some(name) = &self.payload_header {
            // The claims exactly as the issuer signed them.
            if let Ok(v) = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(token.claims_json())) {
                out.push((name.clone(), Some(v)));
            }
        }
        out
    }

    fn is_identity(&self, name: &str) -> bool {
        normalized_starts_with(name, &self.prefix)
            || self.identity.iter().any(|i| normalized_eq(name, i))
    }

    fn is_foreign_identity(&self, name: &str) -> bool {
        self.foreign.iter().any(|p| p.matches(name))
    }
}

fn is_forwarding(name: &str) -> bool {
    normalized_starts_with(name, FORWARDING_PREFIX)
        || FORWARDING.iter().any(|f| normalized_eq(name, f))
}

/// Whether a response trailer field may reach the client (and the rule request trailers
/// share): not hop-by-hop, not one RFC 9110 §6.5.1 keeps out of trailers.
pub fn keeps_response_trailer(name: &HeaderName) -> bool {
    let n = name.as_str();
    // Hop-by-hop names in any spelling: a trailer is never a place for them.
    !HOP_BY_HOP.iter().any(|h| normalized_eq(n, h.as_str()))
        && !NOT_IN_TRAILERS.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => normalized_starts_with(n, prefix),
            None => normalized_eq(n, p),
        })
}

/// Whether any comma-separated element of any `name` field is `token` (case-insensitive).
fn lists_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Keeps, in a `Trailer` declaration, only the names `keep` accepts.
fn filter_declaration(headers: &mut HeaderMap, keep: impl Fn(&HeaderName) -> bool) {
    if !headers.contains_key(TRAILER) {
        return;
    }
    let kept: Vec<HeaderName> = headers
        .get_all(TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| keep(n))
        .collect();
    headers.remove(TRAILER);
    let joined = kept
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let (false, Ok(v)) = (kept.is_empty(), HeaderValue::from_str(&joined)) {
        headers.insert(TRAILER, v);
    }
}

/// RFC 9113 §8.2.3: an HTTP/2 client may split `Cookie` into several fields; before an
/// HTTP/1.1 hop they MUST be one, joined with `"; "`. An HTTP/1.1 client's repeated `Cookie`
/// lines are joined the same way, so both reach the upstream alike.
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = BytesMut::from(first.as_bytes());
    for value in headers.get_all(COOKIE).iter().skip(1) {
        joined.put_slice(b"; ");
        joined.put_slice(value.as_bytes());
    }
    match HeaderValue::from_maybe_shared(joined.freeze()) {
        Ok(v) => {
            headers.insert(COOKIE, v);
        }
        // Cannot happen (the parts were header values); never forward the split form.
        Err(_) => {
            headers.remove(COOKIE);
        }
    }
}

/// Removes the headers a `Connection` header names (RFC 9110 §7.6.1), then `Connection`.
/// The names in [`CONNECTION_PROOF`] are not removed: they are end-to-end, and tokengate's.
fn remove_connection_listed(headers: &mut HeaderMap) {
    if !headers.contains_key(CONNECTION) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !CONNECTION_PROOF.contains(name))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    headers.remove(CONNECTION);
}

/// Cleans an upstream response: hop-by-hop headers and those its `Connection` names, and a
/// `Trailer` declaration of fields that will be dropped. A 101 to a WebSocket handshake keeps
/// its `Connection: upgrade` / `Upgrade: websocket` pair.
pub fn strip_response(headers: &mut HeaderMap, websocket_accepted: bool) {
    remove_connection_listed(headers);
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    filter_declaration(headers, keeps_response_trailer);
    if websocket_accepted {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    }
}

/// Which rule a [`TrailerFilter`] applies.
#[derive(Clone)]
pub enum TrailerRules {
    /// A request's trailers, on their way to the upstream.
    Request(Arc<HeaderPolicy>),
    /// A response's trailers, on their way to the client.
    Response,
}

impl TrailerRules {
    fn keeps(&self, name: &HeaderName) -> bool {
        match self {
            TrailerRules::Request(policy) => policy.keeps_request_trailer(name),
            TrailerRules::Response => keeps_response_trailer(name),
        }
    }
}

/// A body whose trailer section is filtered by [`TrailerRules`]; data frames pass untouched.
pub struct TrailerFilter<B> {
    inner: B,
    rules: TrailerRules,
}

impl<B> TrailerFilter<B> {
    /// `inner` with every trailer section filtered by `rules` (RFC 9110 §6.5).
    pub fn new(inner: B, rules: TrailerRules) -> TrailerFilter<B> {
        TrailerFilter { inner, rules }
    }
}

impl<B> http_body::Body for TrailerFilter<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_trailers() {
                    Ok(mut trailers) => {
                        let doomed: Vec<HeaderName> = trailers
                            .keys()
                            .filter(|n| !this.rules.keeps(n))
                            .cloned()
                            .collect();
                        for name in doomed {
                            trailers.remove(&name);
                        }
                        http_body::Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                };
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Claim → header text: strings as they are, arrays joined (or JSON), anything else as
/// compact JSON. `None` when the text would not read back as the same value: a joined element
/// containing the separator or a control character (`["Everyone", "not admin"]` joined by
/// spaces reads as containing `admin`).
fn render(value: &Value, separator: &str, format: ArrayFormat) -> Option<String> {
    match (value, format) {
        (Value::String(s), _) => Some(s.clone()),
        (Value::Array(items), ArrayFormat::Joined) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                let text = match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if splits_on(&text, separator) {
                    return None;
                }
                parts.push(text);
            }
            Some(parts.join(separator))
        }
        (other, _) => Some(other.to_string()),
    }
}

/// Whether a list joined by `separator` could split inside `element`, as upstreams split:
/// on the separator itself, on it trimmed (`", "` lists are read by splitting on `,`), and,
/// for a white-space separator, on any Unicode white space (Go's `strings.Fields`, Python's
/// `str.split()`, JavaScript's `/\s+/` all split on U+00A0 or U+2028). Control characters
/// never pass.
fn splits_on(element: &str, separator: &str) -> bool {
    let trimmed = separator.trim();
    element.chars().any(char::is_control)
        || element.contains(separator)
        || (!trimmed.is_empty() && element.contains(trimmed))
        || (trimmed.is_empty() && element.chars().any(char::is_whitespace))
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// A header value with no control characters (UTF-8 passes as opaque bytes).
fn header_value(text: &str) -> Option<HeaderValue> {
    if text.bytes().any(is_control) {
        return None;
    }
    HeaderValue::from_bytes(text.as_bytes()).ok()
}

/// `Authorization: DPoP <token>` → `Authorization: Bearer <token>` (the token's text is
/// unchanged); any other value is left alone.
fn as_bearer(headers: &mut HeaderMap) {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return;
    };
    let bytes = value.as_bytes();
    if bytes.len() > 5 && bytes[..5].eq_ignore_ascii_case(b"dpop ") {
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(&bytes[5..]);
        if let Ok(v) = HeaderValue::from_bytes(&bearer) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::Principal;
    use crate::authz::authorize;
    use crate::route::Rule;
    use serde_json::json;
    use std::sync::Arc;

    fn policy(trusted: &[&str]) -> HeaderPolicy {
        let forward = ForwardSettings {
            headers: vec![
                ClaimHeader {
                    name: HeaderName::from_static("x-auth-subject"),
                    sources: vec![vec!["sub".into()]],
                    array_format: ArrayFormat::Joined,
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-user-roles"),
                    sources: vec![vec!["realm_access".into(), "roles".into()]],
                    array_format: ArrayFormat::Joined,
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-auth-scopes"),
                    sources: vec![vec!["scp".into()], vec!["scope".into()]],
                    array_format: ArrayFormat::Joined,
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-auth-meta"),
                    sources: vec![vec!["meta".into()]],
                    array_format: ArrayFormat::Joined,
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-groups-json"),
                    sources: vec![vec!["groups".into()]],
                    array_format: ArrayFormat::Json,
                },
            ],
            strip_prefix: "x-auth-".into(),
            separator: " ".into(),
            payload_header: None,
            strip_authorization: false,
            foreign_identity: crate::config::DEFAULT_FOREIGN_IDENTITY_HEADERS
                .iter()
                .filter_map(|p| HeaderPattern::parse(p))
                .collect(),
            trusted_identity: vec!["x-forwarded-user".into()],
        };
        HeaderPolicy::new(
            &forward,
            &trusted
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect::<Vec<_>>(),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        }
        h
    }

    fn permit(claims: Value) -> Permit {
        let token = VerifiedToken::new(
            "https://idp".into(),
            Default::default(),
            claims.as_object().cloned().unwrap_or_default(),
        );
        let principal = Principal::Authenticated(Arc::new(token));
        authorize(&Rule::required(), principal).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// What a public route lets through.
    fn anonymous() -> Permit {
        authorize(&Rule::public(), Principal::Anonymous).unwrap_or_else(|e| panic!("{e:?}"))
    }

    static ID: HeaderValue = HeaderValue::from_static("req-1");

    const PEER: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)),
        5000,
    );

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let p = policy(&[]);
        let mut h = headers(&[
            ("X-Auth-Subject", "admin"),
            ("x_auth_subject", "admin"),
            ("X_AUTH_SUBJECT", "admin"),
            ("X-Auth-Anything", "x"),
            ("X-User-Roles", "admin"),
            ("x_user_roles", "admin"),
            ("Accept", "*/*"),
        ]);
        p.strip_request(&mut h, &PEER, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn the_certificate_header_is_stripped_in_every_spelling_from_everyone() {
        let p = policy(&["127.0.0.1/32"]).stripping_certificate_header(Some(
            &HeaderName::from_static("x-forwarded-client-cert"),
        ));
        let trusted: SocketAddr = "127.0.0.1:1".parse().unwrap_or(PEER);
        for peer in [PEER, trusted] {
            let mut h = headers(&[
                ("X-Forwarded-Client-Cert", "Hash=00"),
                ("x_forwarded_client_cert", "Hash=00"),
                ("X_Forwarded-Client_CERT", "Hash=00"),
                ("Accept", "*/*"),
            ]);
            p.strip_request(&mut h, &peer, false);
            let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            assert_eq!(names, vec!["accept"], "{peer}");
        }
        let name = HeaderName::from_static("x_forwarded_client_cert");
        assert!(!p.keeps_request_trailer(&name));
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let p = policy(&[]);
        let mut h = headers(&[
            ("Connection", "close, X-Custom, Authorization"),
            ("X-Custom", "1"),
            ("Authorization", "Bearer t"),
            ("Keep-Alive", "timeout=5"),
            ("Upgrade", "websocket"),
            ("TE", "trailers, deflate"),
            ("Proxy-Authorization", "Basic x"),
            ("Expect", "100-continue"),
            ("Accept", "*/*"),
        ]);
        p.strip_request(&mut h, &PEER, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["accept", "te"]);
        assert_eq!(h.get(TE).and_then(|v| v.to_str().ok()), Some("trailers"));
    }

    #[test]
    fn forwarding_headers_only_from_trusted_peers() {
        let spoofed = [
            ("X-Forwarded-For", "1.2.3.4"),
            ("X_Forwarded_For", "1.2.3.4"),
            ("X-Forwarded-Uri", "/public"),
            ("Forwarded", "for=1.2.3.4"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Original-URL", "/public"),
            ("X-Rewrite-URL", "/public"),
            ("Host", "api.example.com"),
        ];
        let untrusted = policy(&[]);
        let mut h = headers(&spoofed);
        let origin = untrusted.strip_request(&mut h, &PEER, false);
        untrusted.inject(&mut h, &origin, &PEER, "http", &anonymous(), &ID);
        assert_eq!(
            h.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            Some("203.0.113.9")
        );
        assert_eq!(
            h.get("x-forwarded-host").and_then(|v| v.to_str().ok()),
            Some("api.example.com")
        );
        assert_eq!(
            h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
            Some("http")
        );
        for gone in [
            "x_forwarded_for",
            "x-forwarded-uri",
            "forwarded",
            "x-real-ip",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }

        let trusted = policy(&["203.0.113.0/24"]);
        let mut h = headers(&[
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let origin = trusted.strip_request(&mut h, &PEER, false);
        trusted.inject(&mut h, &origin, &PEER, "http", &anonymous(), &ID);
        assert_eq!(
            h.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            Some("198.51.100.1, 203.0.113.9")
        );
        assert_eq!(
            h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
            Some("https")
        );
    }

    #[test]
    fn claims_become_headers() {
        let p = policy(&[]);
        let mut h = HeaderMap::new();
        let origin = ForwardedFrom {
            host: None,
            trusted_peer: false,
        };
        let claims = json!({
            "sub": "José",
            "realm_access": {"roles": ["admin", "user"]},
            "scope": "read write",
            "meta": {"a": 1, "b": true},
        });
        p.inject(&mut h, &origin, &PEER, "http", &permit(claims), &ID);
        assert_eq!(
            h.get("x-auth-subject").map(|v| v.as_bytes()),
            Some("José".as_bytes())
        );
        assert_eq!(
            h.get("x-user-roles").and_then(|v| v.to_str().ok()),
            Some("admin user")
        );
        assert_eq!(
            h.get("x-auth-scopes").and_then(|v| v.to_str().ok()),
            Some("read write")
        );
        assert_eq!(
            h.get("x-auth-meta").and_then(|v| v.to_str().ok()),
            Some(r#"{"a":1,"b":true}"#)
        );
    }

    #[test]
    fn control_characters_drop_the_header() {
        let p = policy(&[]);
        let mut h = HeaderMap::new();
        let origin = ForwardedFrom {
            host: None,
            trusted_peer: false,
        };
        p.inject(
            &mut h,
            &origin,
            &PEER,
            "http",
            &permit(json!({"sub": "a\r\nX-Auth-Admin: true"})),
            &ID,
        );
        assert!(!h.contains_key("x-auth-subject"));
        assert!(!h.contains_key("x-auth-admin"));
    }

    #[test]
    fn response_hop_by_hop_is_removed_except_for_upgrades() {
        let mut h = headers(&[
            ("Connection", "close, X-Internal"),
            ("X-Internal", "1"),
            ("Keep-Alive", "x"),
            ("Content-Type", "a/b"),
        ]);
        strip_response(&mut h, false);
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["content-type"]
        );
        let mut h = headers(&[("Connection", "Upgrade"), ("Upgrade", "websocket")]);
        strip_response(&mut h, true);
        assert_eq!(
            h.get(UPGRADE).and_then(|v| v.to_str().ok()),
            Some("websocket")
        );
    }

    #[test]
    fn foreign_identity_headers_are_stripped_in_every_spelling() {
        let p = policy(&[]);
        let sent = [
            ("X-Forwarded-User", "admin"),
            ("x_forwarded_email", "a@b"),
            ("X-Auth-Request-User", "admin"),
            ("Remote-User", "admin"),
            ("REMOTE_USER", "admin"),
            ("X-Remote-Group", "admin"),
            ("X-User", "admin"),
            ("X-Userinfo", "e30"),
            ("X-Authenticated-Userid", "admin"),
            ("X-Id-Token", "x"),
            ("X-Jwt-Assertion", "x"),
            ("OIDC_CLAIM_email", "a@b"),
            ("oidc-claim-groups", "admin"),
            ("OIDC_access_token", "x"),
            ("X-Consumer-Username", "admin"),
            ("X-Pomerium-Claim-Email", "a@b"),
            ("X-MS-CLIENT-PRINCIPAL-NAME", "admin"),
            ("X-MS-CLIENT-PRINCIPAL", "e30"),
            ("X-Amzn-Oidc-Identity", "admin"),
            ("Cf-Access-Authenticated-User-Email", "a@b"),
            ("X-Goog-Authenticated-User-Email", "a@b"),
            ("X_Request_Id", "client-chosen"),
            ("Accept", "*/*"),
        ];
        let mut h = headers(&sent);
        p.strip_request(&mut h, &PEER, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["accept"]);

        // From a trusted proxy, only the names listed in trusted_identity_headers survive.
        let trusted = policy(&["203.0.113.0/24"]);
        let mut h = headers(&sent);
        trusted.strip_request(&mut h, &PEER, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["accept", "x-forwarded-user"]);
    }

    #[test]
    fn connection_cannot_remove_what_tokengate_decides() {
        let p = policy(&[]);
        let mut h = headers(&[
            (
                "Connection",
                "Host, X-Request-Id, Content-Length, X-Forwarded-Host, X-Private",
            ),
            ("Host", "api.example.com"),
            ("X-Request-Id", "client-chosen"),
            ("Content-Length", "5"),
            ("X-Private", "1"),
        ]);
        let origin = p.strip_request(&mut h, &PEER, false);
        p.inject(&mut h, &origin, &PEER, "http", &anonymous(), &ID);
        assert_eq!(
            h.get(HOST),
            Some(&HeaderValue::from_static("api.example.com"))
        );
        assert_eq!(h.get(CONTENT_LENGTH), Some(&HeaderValue::from_static("5")));
        assert_eq!(h.get("x-request-id"), Some(&ID));
        assert_eq!(
            h.get("x-forwarded-host"),
            Some(&HeaderValue::from_static("api.example.com"))
        );
        assert!(!h.contains_key("x-private"));
    }

    #[test]
    fn upgrades_other_than_websocket_are_removed() {
        let p = policy(&[]);
        let mut h = headers(&[
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        p.strip_request(&mut h, &PEER, false);
        assert!(h.is_empty(), "{h:?}");
        let mut h = headers(&[("Connection", "Upgrade"), ("Upgrade", "WebSocket")]);
        p.strip_request(&mut h, &PEER, true);
        assert_eq!(h.get(UPGRADE), Some(&HeaderValue::from_static("websocket")));
        assert_eq!(
            h.get(CONNECTION),
            Some(&HeaderValue::from_static("upgrade"))
        );
    }

    #[test]
    fn split_cookies_are_joined() {
        let p = policy(&[]);
        let mut h = headers(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        p.strip_request(&mut h, &PEER, false);
        let all: Vec<&HeaderValue> = h.get_all(COOKIE).iter().collect();
        assert_eq!(all, [&HeaderValue::from_static("a=1; b=2; c=3")]);
    }

    #[test]
    fn trailers_follow_the_header_rules() {
        let p = policy(&[]);
        for dropped in [
            "x-auth-subject",
            "X_Auth_Subject",
            "x-forwarded-for",
            "x-forwarded-user",
            "remote-user",
            "content-length",
            "content-type",
            "transfer-encoding",
            "host",
            "authorization",
            "cookie",
            "trailer",
            "x-request-id",
            "x-http-method-override",
            "if-match",
            "access-control-allow-origin",
            "connection",
        ] {
            let name = HeaderName::from_bytes(dropped.as_bytes()).unwrap_or(CONNECTION);
            assert!(!p.keeps_request_trailer(&name), "{dropped}");
        }
        for kept in ["x-checksum", "grpc-status", "server-timing"] {
            let name = HeaderName::from_bytes(kept.as_bytes()).unwrap_or(CONNECTION);
            assert!(p.keeps_request_trailer(&name), "{kept}");
            assert!(keeps_response_trailer(&name), "{kept}");
        }
        let mut h = headers(&[("Trailer", "X-Auth-Subject, X-Checksum, Content-Length")]);
        p.strip_request(&mut h, &PEER, false);
        assert_eq!(
            h.get(TRAILER),
            Some(&HeaderValue::from_static("x-checksum"))
        );
        let mut h = headers(&[("Trailer", "X-Auth-Subject, X-Forwarded-For")]);
        p.strip_request(&mut h, &PEER, false);
        assert!(!h.contains_key(TRAILER));
    }

    #[test]
    fn ambiguous_array_claims_are_withheld_and_json_is_exact() {
        let p = policy(&[]);
        let mut h = HeaderMap::new();
        let origin = ForwardedFrom {
            host: None,
            trusted_peer: false,
        };
        let claims = json!({
            "sub": "user-1",
            "realm_access": {"roles": ["Everyone", "not admin"]},
            "groups": ["Everyone", "not admin", "a\"b"],
        });
        p.inject(&mut h, &origin, &PEER, "http", &permit(claims), &ID);
        assert!(!h.contains_key("x-user-roles"), "{h:?}");
        assert_eq!(
            h.get("x-groups-json").and_then(|v| v.to_str().ok()),
            Some(r#"["Everyone","not admin","a\"b"]"#)
        );
        assert_eq!(
            render(&json!(["a", "b\u{1}"]), ",", ArrayFormat::Joined),
            None
        );
        assert_eq!(
            render(&json!(["a", "b c"]), ",", ArrayFormat::Joined).as_deref(),
            Some("a,b c")
        );
        assert_eq!(
            render(&json!([{"k": "a b"}]), " ", ArrayFormat::Joined),
            None
        );
    }

    #[test]
    fn fuzzing_findings_stay_fixed() {
        // httpoxy: `Proxy` never reaches the upstream; client-IP headers are forwarding ones.
        let p = policy(&[]);
        let mut h = headers(&[
            ("Proxy", "http://evil.example:8080"),
            ("True-Client-IP", "6.6.6.6"),
            ("CF-Connecting-IP", "6.6.6.6"),
            ("X-Original-Host", "evil.example"),
            ("Accept", "*/*"),
        ]);
        p.strip_request(&mut h, &PEER, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
        // A trusted proxy's identity header passes in the configured spelling only.
        let trusted = policy(&["203.0.113.0/24"]);
        let mut h = headers(&[("X-Forwarded-User", "alice"), ("x_forwarded_user", "admin")]);
        trusted.strip_request(&mut h, &PEER, false);
        let users: Vec<&HeaderValue> = h.get_all("x-forwarded-user").iter().collect();
        assert_eq!(users, [&HeaderValue::from_static("alice")]);
        assert!(!h.contains_key("x_forwarded_user"));
        // Hop-by-hop names in any spelling, and Proxy-Authentication-Info, are no trailers.
        for name in [
            "keep_alive",
            "transfer_encoding",
            "proxy-authentication-info",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap_or(CONNECTION);
            assert!(!keeps_response_trailer(&name), "{name}");
            assert!(!p.keeps_request_trailer(&name), "{name}");
        }
    }

    #[test]
    fn a_forward_auth_answer_names_every_identity_header() {
        let p = policy(&[]);
        let answer = |permit: &Permit| -> Vec<(String, String)> {
            p.identity_answer(permit, &ID)
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
                .collect()
        };
        let names = [
            "x-auth-subject",
            "x-user-roles",
            "x-auth-scopes",
            "x-auth-meta",
            "x-groups-json",
            "x-auth-token-binding",
        ];
        // A verified token: its values; absent claims and ambiguous values are empty.
        let got = answer(&permit(json!({
            "sub": "alice",
            "scp": ["read", "write"],
            "groups": ["a b"],
            "realm_access": {"roles": ["Everyone", "not admin"]},
        })));
        let expected: Vec<(String, String)> = names
            .iter()
            .zip(["alice", "", "read write", "", "[\"a b\"]", ""])
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, expected);
        // A DPoP-bound token says so.
        let got = answer(&permit(json!({"sub": "alice", "cnf": {"jkt": "abc"}})));
        assert_eq!(
            got.last(),
            Some(&("x-auth-token-binding".to_owned(), "dpop".to_owned()))
        );
        // Anonymous: every name, every value empty.
        let got = answer(&anonymous());
        assert_eq!(
            got,
            names
                .iter()
                .map(|n| (n.to_string(), String::new()))
                .collect::<Vec<_>>()
        );
    }
}
