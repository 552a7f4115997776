//! Stage 5: header surgery, strip before inject, on every path that reaches an upstream.
//!
//! Stripped from requests: hop-by-hop headers and the names listed in `Connection` (RFC 9110
//! §7.6.1); every configured identity header and every header with the identity prefix,
//! compared after lower-casing and reading `_` as `-` (`X_Auth_Subject` is `X-Auth-Subject` to
//! many upstreams); `X-Forwarded-*`, `Forwarded`, `X-Real-IP`, `X-Original-URL` and
//! `X-Rewrite-URL` unless the peer is a trusted proxy. Then tokengate adds its own. Nothing a
//! client sends can look like something tokengate said.

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderName, HeaderValue, CONNECTION, HOST, TE, UPGRADE};
use http::HeaderMap;
use ipnet::IpNet;
use serde_json::Value;
use tracing::warn;

use crate::authn::VerifiedToken;
use crate::authz::Permit;
use crate::claims;
use crate::config::{normalize_header_name, ClaimHeader, ForwardSettings};

/// RFC 9110 §7.6.1, plus the proxy-only headers and `Expect` (tokengate answers
/// `100-continue` itself by reading the body).
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    TE,
    http::header::TRANSFER_ENCODING,
    UPGRADE,
    http::header::EXPECT,
];

/// Headers that ask an upstream to treat the request as another method than the one the
/// rules saw: never forwarded, from anyone.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers that describe the client connection; believed only from trusted proxies.
const FORWARDING_PREFIX: &str = "x-forwarded-";
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-client-ip",
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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
}

/// What the request said about itself before stripping, for the forwarding headers.
pub struct Origin {
    pub host: Option<HeaderValue>,
    pub trusted_peer: bool,
}

impl HeaderPolicy {
    pub fn new(forward: &ForwardSettings, trusted_proxies: &[IpNet]) -> HeaderPolicy {
        let mut identity: Vec<String> = forward
            .headers
            .iter()
            .map(|h| normalize_header_name(h.name.as_str()))
            .collect();
        if let Some(p) = &forward.payload_header {
            identity.push(normalize_header_name(p.as_str()));
        }
        HeaderPolicy {
            identity,
            prefix: forward.strip_prefix.clone(),
            claim_headers: forward.headers.clone(),
            separator: forward.separator.clone(),
            payload_header: forward.payload_header.clone(),
            strip_authorization: forward.strip_authorization,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }

    pub fn is_trusted(&self, peer: &SocketAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()))
    }

    /// Removes everything the upstream must not take from the client. `upgrade` keeps the
    /// `Connection: upgrade` / `Upgrade` pair of a WebSocket handshake.
    pub fn strip_request(
        &self,
        headers: &mut HeaderMap,
        peer: &SocketAddr,
        upgrade: bool,
    ) -> Origin {
        let trusted_peer = self.is_trusted(peer);
        let host = headers.get(HOST).cloned();
        let wants_trailers = headers
            .get_all(TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        let upgrade_value = headers.get(UPGRADE).cloned();
        remove_connection_listed(headers);
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let n = name.as_str();
                HOP_BY_HOP.contains(name)
                    || METHOD_OVERRIDES.iter().any(|m| normalized_eq(n, m))
                    || self.is_identity(n)
                    || (!trusted_peer && is_forwarding(n))
            })
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
        if self.strip_authorization {
            headers.remove(http::header::AUTHORIZATION);
        }
        if wants_trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
        if let (true, Some(value)) = (upgrade, upgrade_value) {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, value);
        }
        Origin { host, trusted_peer }
    }

    /// Adds `X-Forwarded-For/Proto/Host` and, for a verified token, the claims headers.
    pub fn inject(
        &self,
        headers: &mut HeaderMap,
        origin: &Origin,
        peer: &SocketAddr,
        proto: &'static str,
        permit: &Permit,
    ) {
        let peer_ip = peer.ip().to_string();
        let chain = match (
            origin.trusted_peer,
            headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()),
        ) {
            (true, Some(existing)) if !existing.trim().is_empty() => {
                format!("{existing}, {peer_ip}")
            }
            _ => peer_ip,
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        if !(origin.trusted_peer && headers.contains_key(&X_FORWARDED_PROTO)) {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        }
        if !(origin.trusted_peer && headers.contains_key(&X_FORWARDED_HOST)) {
            if let Some(host) = &origin.host {
                headers.insert(X_FORWARDED_HOST.clone(), host.clone());
            }
        }
        let Some(token) = permit.token() else { return };
        // Rendered once per verified token; a cached token reuses them.
        let rendered = token.forward_headers.get_or_init(|| self.render(token));
        for (name, value) in rendered {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// The claims headers (and payload header) for one verified token.
    fn render(&self, token: &VerifiedToken) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(self.claim_headers.len() + 1);
        let token_claims = token.claims();
        for header in &self.claim_headers {
            let value = header
                .sources
                .iter()
                .find_map(|path| claims::lookup(&token_claims, path))
                .map(|v| render(v, &self.separator));
            let Some(text) = value else { continue };
            match header_value(&text) {
                Some(v) => out.push((header.name.clone(), v)),
                None => {
                    warn!(header = %header.name, issuer = %token.issuer, "claim value cannot be a header value; header not sent")
                }
            }
        }
        if let Some(name) = &self.payload_header {
            // The claims exactly as the issuer signed them.
            if let Ok(v) = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(token.claims_json())) {
                out.push((name.clone(), v));
            }
        }
        out
    }

    fn is_identity(&self, name: &str) -> bool {
        normalized_starts_with(name, &self.prefix)
            || self.identity.iter().any(|i| normalized_eq(name, i))
    }
}

fn is_forwarding(name: &str) -> bool {
    normalized_starts_with(name, FORWARDING_PREFIX)
        || FORWARDING.iter().any(|f| normalized_eq(name, f))
}

/// `name` equals `normal` (a name already in [`normalize_header_name`] form) once it is
/// normalised; compared byte by byte so the per-request check allocates nothing.
fn normalized_eq(name: &str, normal: &str) -> bool {
    name.len() == normal.len() && normalized_starts_with(name, normal)
}

/// `name`, once normalised, starts with `normal`.
fn normalized_starts_with(name: &str, normal: &str) -> bool {
    name.len() >= normal.len()
        && name
            .bytes()
            .zip(normal.bytes())
            .all(|(a, b)| normalize_header_byte(a) == b)
}

fn normalize_header_byte(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
    }
}

/// Removes the headers a `Connection` header names (RFC 9110 §7.6.1), then `Connection`.
fn remove_connection_listed(headers: &mut HeaderMap) {
    if !headers.contains_key(CONNECTION) {
        return;
    }
    let listed: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in listed {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    headers.remove(CONNECTION);
}

/// Cleans an upstream response: hop-by-hop headers and those its `Connection` names.
/// A 101 keeps its `Connection: upgrade` / `Upgrade` pair.
pub fn strip_response(headers: &mut HeaderMap, switching_protocols: bool) {
    let upgrade = headers.get(UPGRADE).cloned();
    remove_connection_listed(headers);
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let (true, Some(value)) = (switching_protocols, upgrade) {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, value);
    }
}

/// Claim → header text: strings as they are, arrays joined, anything else as compact JSON.
fn render(value: &Value, separator: &str) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(separator),
        other => other.to_string(),
    }
}

/// A header value with no control characters (UTF-8 passes as opaque bytes).
fn header_value(text: &str) -> Option<HeaderValue> {
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    HeaderValue::from_bytes(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::Principal;
    use serde_json::json;
    use std::sync::Arc;

    fn policy(trusted: &[&str]) -> HeaderPolicy {
        let forward = ForwardSettings {
            headers: vec![
                ClaimHeader {
                    name: HeaderName::from_static("x-auth-subject"),
                    sources: vec![vec!["sub".into()]],
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-user-roles"),
                    sources: vec![vec!["realm_access".into(), "roles".into()]],
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-auth-scopes"),
                    sources: vec![vec!["scp".into()], vec!["scope".into()]],
                },
                ClaimHeader {
                    name: HeaderName::from_static("x-auth-meta"),
                    sources: vec![vec!["meta".into()]],
                },
            ],
            strip_prefix: "x-auth-".into(),
            separator: " ".into(),
            payload_header: None,
            strip_authorization: false,
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
        Permit {
            principal: Principal::Authenticated(Arc::new(VerifiedToken::new(
                "https://idp".into(),
                Default::default(),
                claims.as_object().cloned().unwrap_or_default(),
            ))),
        }
    }

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
        untrusted.inject(
            &mut h,
            &origin,
            &PEER,
            "http",
            &Permit {
                principal: Principal::Anonymous,
            },
        );
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
        trusted.inject(
            &mut h,
            &origin,
            &PEER,
            "http",
            &Permit {
                principal: Principal::Anonymous,
            },
        );
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
        let origin = Origin {
            host: None,
            trusted_peer: false,
        };
        let claims = json!({
            "sub": "José",
            "realm_access": {"roles": ["admin", "user"]},
            "scope": "read write",
            "meta": {"a": 1, "b": true},
        });
        p.inject(&mut h, &origin, &PEER, "http", &permit(claims));
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
        let origin = Origin {
            host: None,
            trusted_peer: false,
        };
        p.inject(
            &mut h,
            &origin,
            &PEER,
            "http",
            &permit(json!({"sub": "a\r\nX-Auth-Admin: true"})),
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
}
