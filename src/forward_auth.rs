//! Forward-auth: an ingress (nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth`, Envoy `ext_authz`) asks tokengate whether to let a request through; this
//! stage says whether a request is such a question ([`is_decision`]) and rebuilds the request
//! it asks about ([`original_request`]). The rest of the decision is the proxy's own
//! pipeline (`App::decide`): canonical path, rule table, token, verification, authorization.
//!
//! Fail closed: the original request is read only from a TCP peer in
//! `forward_auth.trusted_proxies` (any other gets 403, whatever it sends), only from the
//! headers of the configured mode, and only when each of them is there exactly once and
//! reads one way; anything else is a 400, never a guess and never a pass.
//!
//! | mode | method | target |
//! |---|---|---|
//! | `nginx` | `X-Original-Method` | `X-Original-URI` |
//! | `traefik`, `caddy` | `X-Forwarded-Method` | `X-Forwarded-Uri` (with `X-Forwarded-Proto` and `X-Forwarded-Host`) |
//! | `envoy` | the request's own | the request's path after `path_prefix`, and its query |

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL};
use http::{HeaderMap, Method, Response, StatusCode, Uri};

use crate::body::{full, Body};
use crate::config::{ForwardAuthMode, ForwardAuthSettings};
use crate::route::{self, CanonicalPath, PathOptions};

static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// Why a forward-auth question is not answered with a decision; `rejection` turns it into
/// the response (403 for [`ForwardAuthError::UntrustedPeer`], 400 for the rest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardAuthError {
    /// The TCP peer is not in `forward_auth.trusted_proxies`: its headers are not believed.
    #[error("the forward-auth endpoint answers the configured ingress only")]
    UntrustedPeer,
    /// A header that carries the original request is missing (or empty): its name.
    #[error("the ingress did not send {0}")]
    MissingHeader(&'static str),
    /// A header that carries the original request is there more than once: its name.
    #[error("{0} is repeated, so the original request is ambiguous")]
    RepeatedHeader(&'static str),
    /// A header that carries the original request cannot be read one way: its name and why.
    #[error("{name} is unusable: {why}")]
    BadHeader {
        name: &'static str,
        why: &'static str,
    },
    /// Envoy: nothing (or no absolute path) follows `path_prefix`.
    #[error("no original path follows the forward-auth prefix")]
    NoOriginalPath,
    /// The request's canonical path is the decision path, but it is not written as
    /// configured (`//_auth`, `/%5Fauth`): refused rather than read two ways.
    #[error("the forward-auth path must be written as configured")]
    AmbiguousEndpointPath,
}

impl ForwardAuthError {
    /// A stable code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ForwardAuthError::UntrustedPeer => "forward_auth_untrusted_peer",
            ForwardAuthError::MissingHeader(_) => "forward_auth_header_missing",
            ForwardAuthError::RepeatedHeader(_) => "forward_auth_header_repeated",
            ForwardAuthError::BadHeader { .. } => "forward_auth_header_invalid",
            ForwardAuthError::NoOriginalPath => "forward_auth_path_missing",
            ForwardAuthError::AmbiguousEndpointPath => "forward_auth_path_ambiguous",
        }
    }
}

/// The request an ingress asks about, as rebuilt from what it sent. `App::decide` runs the
/// pipeline's stages on it; its method and target are also what a sender-constrained check
/// (DPoP `htm`, `htu`) will compare with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    /// The original method, as the ingress saw it (upper-case is checked by the pipeline).
    pub method: Method,
    /// `http` or `https`, when the ingress says (Traefik, Caddy).
    pub scheme: Option<&'static str>,
    /// The original `Host`, when the ingress says (Traefik, Caddy).
    pub host: Option<String>,
    /// The original path, still percent-encoded as sent (canonicalised by the pipeline).
    pub path: String,
    /// The original query, without `?`.
    pub query: Option<String>,
}

impl OriginalRequest {
    /// `scheme://host[:port]` (RFC 6454 serialisation) of the original request, when the
    /// ingress reports both scheme and host (Traefik, Caddy); what DPoP's `htu` is checked
    /// against when `dpop.external_url` is not set.
    pub fn origin(&self) -> Option<String> {
        route::origin(self.scheme?, self.host.as_deref()?)
    }
}

/// Whether a request to `raw_path` (as sent; `canonical` is its canonical form) asks for a
/// decision. Recognised on the path as written, so that no spelling reaches the rule table
/// or the upstream as an ordinary request; a path that is the decision path only once
/// canonicalised is refused ([`ForwardAuthError::AmbiguousEndpointPath`]).
pub fn is_decision(
    settings: &ForwardAuthSettings,
    raw_path: &str,
    canonical: &CanonicalPath,
    paths: PathOptions,
) -> Result<bool, ForwardAuthError> {
    let hits = |path: &str, case_insensitive: bool| -> bool {
        let eq = |a: &str, b: &str| match case_insensitive {
            true => a.eq_ignore_ascii_case(b),
            false => a == b,
        };
        let prefix = settings.path.as_str();
        match settings.mode {
            ForwardAuthMode::Envoy => {
                eq(path, prefix)
                    || (path.len() > prefix.len()
                        && path.is_char_boundary(prefix.len())
                        && eq(&path[..prefix.len()], prefix)
                        && path.as_bytes()[prefix.len()] == b'/')
            }
            _ => eq(path, prefix),
        }
    };
    if hits(raw_path, false) {
        return Ok(true);
    }
    if hits(&canonical.path, false) || hits(&canonical.matched, paths.case_insensitive) {
        return Err(ForwardAuthError::AmbiguousEndpointPath);
    }
    Ok(false)
}

/// Whether `peer` is in `forward_auth.trusted_proxies` (an IPv4 peer on a dual-stack
/// listener, `::ffff:a.b.c.d`, is compared as `a.b.c.d`).
pub fn is_trusted(settings: &ForwardAuthSettings, peer: &SocketAddr) -> bool {
    let ip = peer.ip().to_canonical();
    settings.trusted_proxies.iter().any(|net| net.contains(&ip))
}

/// Rebuilds the request the ingress asks about from a decision request (`method`, `uri`,
/// `headers`) that came from `peer`, as the configured mode says.
///
/// Errors: [`ForwardAuthError::UntrustedPeer`] first, whatever the headers; then any header
/// of the mode missing, repeated or unreadable, or (Envoy) no path after the prefix.
pub fn original_request(
    settings: &ForwardAuthSettings,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    peer: &SocketAddr,
) -> Result<OriginalRequest, ForwardAuthError> {
    if !is_trusted(settings, peer) {
        return Err(ForwardAuthError::UntrustedPeer);
    }
    match settings.mode {
        ForwardAuthMode::Nginx => {
            let method = original_method(headers, &X_ORIGINAL_METHOD, "X-Original-Method")?;
            let (path, query) = target(headers, &X_ORIGINAL_URI, "X-Original-URI")?;
            Ok(OriginalRequest {
                method,
                scheme: None,
                host: None,
                path,
                query,
            })
        }
        ForwardAuthMode::Traefik | ForwardAuthMode::Caddy => {
            let method = original_method(headers, &X_FORWARDED_METHOD, "X-Forwarded-Method")?;
            let scheme = match one(headers, &X_FORWARDED_PROTO, "X-Forwarded-Proto")? {
                "http" => "http",
                "https" => "https",
                _ => {
                    return Err(ForwardAuthError::BadHeader {
                        name: "X-Forwarded-Proto",
                        why: "it is neither http nor https",
                    })
                }
            };
            let host = original_host(headers)?;
            let (path, query) = target(headers, &X_FORWARDED_URI, "X-Forwarded-Uri")?;
            Ok(OriginalRequest {
                method,
                scheme: Some(scheme),
                host: Some(host),
                path,
                query,
            })
        }
        ForwardAuthMode::Envoy => {
            let rest = uri
                .path()
                .get(settings.path.len()..)
                .filter(|rest| rest.starts_with('/'))
                .ok_or(ForwardAuthError::NoOriginalPath)?;
            Ok(OriginalRequest {
                method: method.clone(),
                scheme: None,
                host: None,
                path: rest.to_owned(),
                query: uri.query().map(str::to_owned),
            })
        }
    }
}

/// The answer that lets the request through: 200, `Cache-Control: no-store` (a decision is
/// about one request, never to be reused by a cache), an empty body, and `identity`: every
/// identity header tokengate sets, with an empty value where there is nothing to say, so an
/// ingress that copies them overwrites whatever the client sent under those names.
pub fn allow(identity: Vec<(HeaderName, HeaderValue)>) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in identity {
        headers.insert(name, value);
    }
    response
}

/// The one value of `name` (`label` in messages): present once, text, not empty.
fn one<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<&'h str, ForwardAuthError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or(ForwardAuthError::MissingHeader(label))?;
    if values.next().is_some() {
        return Err(ForwardAuthError::RepeatedHeader(label));
    }
    let text = value.to_str().map_err(|_| ForwardAuthError::BadHeader {
        name: label,
        why: "it is not visible ASCII",
    })?;
    if text.is_empty() {
        return Err(ForwardAuthError::MissingHeader(label));
    }
    if text.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err(ForwardAuthError::BadHeader {
            name: label,
            why: "it holds white space",
        });
    }
    Ok(text)
}

fn original_method(
    headers: &HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<Method, ForwardAuthError> {
    let text = one(headers, name, label)?;
    Method::from_bytes(text.as_bytes()).map_err(|_| ForwardAuthError::BadHeader {
        name: label,
        why: "it is not a method",
    })
}

/// An origin-form target (RFC 9112 §3.2.1): the path as sent and the query.
fn target(
    headers: &HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<(String, Option<String>), ForwardAuthError> {
    let text = one(headers, name, label)?;
    if !text.starts_with('/') {
        return Err(ForwardAuthError::BadHeader {
            name: label,
            why: "it is not an absolute path",
        });
    }
    Ok(match text.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (text.to_owned(), None),
    })
}

/// `X-Forwarded-Host`: one host (and port), nothing else.
fn original_host(headers: &HeaderMap) -> Result<String, ForwardAuthError> {
    const LABEL: &str = "X-Forwarded-Host";
    let text = one(headers, &X_FORWARDED_HOST, LABEL)?;
    let bad = |why| ForwardAuthError::BadHeader { name: LABEL, why };
    if text.contains([',', '@', '/']) {
        return Err(bad("it is not one host"));
    }
    text.parse::<http::uri::Authority>()
        .map_err(|_| bad("it is not a host"))?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::canonicalize;

    fn settings(mode: ForwardAuthMode) -> ForwardAuthSettings {
        ForwardAuthSettings {
            mode,
            path: "/_auth".into(),
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))],
        }
    }

    fn peer(ip: &str) -> SocketAddr {
        match format!("{ip}:4000").parse() {
            Ok(a) => a,
            Err(e) => panic!("{ip}: {e}"),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn decision(mode: ForwardAuthMode, path: &str) -> Result<bool, ForwardAuthError> {
        let canonical = match canonicalize(path, PathOptions::default()) {
            Ok(c) => c,
            Err(e) => panic!("{path}: {e}"),
        };
        is_decision(&settings(mode), path, &canonical, PathOptions::default())
    }

    #[test]
    fn the_decision_path_is_recognised_as_written_only() {
        use ForwardAuthMode::*;
        assert_eq!(decision(Nginx, "/_auth"), Ok(true));
        assert_eq!(decision(Nginx, "/_auth/x"), Ok(false));
        assert_eq!(decision(Nginx, "/_authx"), Ok(false));
        assert_eq!(decision(Nginx, "/api"), Ok(false));
        assert_eq!(
            decision(Nginx, "//_auth"),
            Err(ForwardAuthError::AmbiguousEndpointPath)
        );
        assert_eq!(
            decision(Traefik, "/%5Fauth"),
            Err(ForwardAuthError::AmbiguousEndpointPath)
        );
        assert_eq!(
            decision(Caddy, "/x/../_auth"),
            Err(ForwardAuthError::AmbiguousEndpointPath)
        );
        assert_eq!(decision(Envoy, "/_auth/admin"), Ok(true));
        assert_eq!(decision(Envoy, "/_auth/../admin"), Ok(true));
        assert_eq!(decision(Envoy, "/_auth"), Ok(true));
        assert_eq!(decision(Envoy, "/_authadmin"), Ok(false));
        assert_eq!(
            decision(Envoy, "//_auth/admin"),
            Err(ForwardAuthError::AmbiguousEndpointPath)
        );
    }

    #[test]
    fn an_untrusted_peer_is_refused_whatever_it_sends() {
        let h = headers(&[("x-original-method", "GET"), ("x-original-uri", "/public")]);
        for mode in [
            ForwardAuthMode::Nginx,
            ForwardAuthMode::Traefik,
            ForwardAuthMode::Caddy,
            ForwardAuthMode::Envoy,
        ] {
            let uri: Uri = "/_auth/public".parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                original_request(&settings(mode), &Method::GET, &uri, &h, &peer("192.0.2.1")),
                Err(ForwardAuthError::UntrustedPeer)
            );
        }
        // The IPv4-mapped form of a trusted address is trusted.
        let uri: Uri = "/_auth".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(original_request(
            &settings(ForwardAuthMode::Nginx),
            &Method::GET,
            &uri,
            &h,
            &"[::ffff:10.1.2.3]:80"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"))
        )
        .is_ok());
    }

    #[test]
    fn each_mode_reads_its_own_headers_once() {
        use ForwardAuthError::*;
        let uri: Uri = "/_auth/from/envoy?q=1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let trusted = peer("10.0.0.1");
        let ask = |mode, pairs: &[(&'static str, &'static str)]| {
            original_request(
                &settings(mode),
                &Method::DELETE,
                &uri,
                &headers(pairs),
                &trusted,
            )
        };
        let nginx = [
            ("x-original-method", "POST"),
            ("x-original-uri", "/admin/x?y=1"),
        ];
        let rebuilt = ask(ForwardAuthMode::Nginx, &nginx);
        assert_eq!(
            rebuilt,
            Ok(OriginalRequest {
                method: Method::POST,
                scheme: None,
                host: None,
                path: "/admin/x".into(),
                query: Some("y=1".into()),
            })
        );
        let traefik = [
            ("x-forwarded-method", "PUT"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com:8443"),
            ("x-forwarded-uri", "/admin"),
        ];
        for mode in [ForwardAuthMode::Traefik, ForwardAuthMode::Caddy] {
            assert_eq!(
                ask(mode, &traefik),
                Ok(OriginalRequest {
                    method: Method::PUT,
                    scheme: Some("https"),
                    host: Some("app.example.com:8443".into()),
                    path: "/admin".into(),
                    query: None,
                })
            );
            // nginx's headers mean nothing here, and the other way round.
            assert_eq!(ask(mode, &nginx), Err(MissingHeader("X-Forwarded-Method")));
        }
        assert_eq!(
            ask(ForwardAuthMode::Nginx, &traefik),
            Err(MissingHeader("X-Original-Method"))
        );
        // Envoy: the request's own method, the path after the prefix; headers are ignored.
        assert_eq!(
            ask(ForwardAuthMode::Envoy, &nginx),
            Ok(OriginalRequest {
                method: Method::DELETE,
                scheme: None,
                host: None,
                path: "/from/envoy".into(),
                query: Some("q=1".into()),
            })
        );
    }

    #[test]
    fn missing_repeated_and_unreadable_headers_are_refused() {
        use ForwardAuthError::*;
        let uri: Uri = "/_auth".parse().unwrap_or_else(|e| panic!("{e}"));
        let trusted = peer("10.0.0.1");
        type Row = (
            ForwardAuthMode,
            Vec<(&'static str, &'static str)>,
            ForwardAuthError,
        );
        let rows: Vec<Row> = vec![
            (
                ForwardAuthMode::Nginx,
                vec![("x-original-method", "GET")],
                MissingHeader("X-Original-URI"),
            ),
            (
                ForwardAuthMode::Nginx,
                vec![("x-original-uri", "/")],
                MissingHeader("X-Original-Method"),
            ),
            (
                ForwardAuthMode::Nginx,
                vec![("x-original-method", "GET"), ("x-original-uri", "")],
                MissingHeader("X-Original-URI"),
            ),
            (
                ForwardAuthMode::Nginx,
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/admin"),
                    ("x-original-uri", "/public"),
                ],
                RepeatedHeader("X-Original-URI"),
            ),
            (
                ForwardAuthMode::Nginx,
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-method", "POST"),
                    ("x-original-uri", "/"),
                ],
                RepeatedHeader("X-Original-Method"),
            ),
            (
                ForwardAuthMode::Nginx,
                vec![
                    ("x-original-method", "GET"),
                    ("x-original-uri", "http://a/admin"),
                ],
                BadHeader {
                    name: "X-Original-URI",
                    why: "it is not an absolute path",
                },
            ),
            (
                ForwardAuthMode::Nginx,
                vec![("x-original-method", "GET"), ("x-original-uri", "/a b")],
                BadHeader {
                    name: "X-Original-URI",
                    why: "it holds white space",
                },
            ),
            (
                ForwardAuthMode::Nginx,
                vec![("x-original-method", "G(T"), ("x-original-uri", "/")],
                BadHeader {
                    name: "X-Original-Method",
                    why: "it is not a method",
                },
            ),
            (
                ForwardAuthMode::Traefik,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "a"),
                ],
                MissingHeader("X-Forwarded-Uri"),
            ),
            (
                ForwardAuthMode::Traefik,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-host", "a"),
                    ("x-forwarded-uri", "/"),
                ],
                MissingHeader("X-Forwarded-Proto"),
            ),
            (
                ForwardAuthMode::Caddy,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-uri", "/"),
                ],
                MissingHeader("X-Forwarded-Host"),
            ),
            (
                ForwardAuthMode::Caddy,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "a"),
                    ("x-forwarded-uri", "/admin"),
                    ("x-forwarded-uri", "/public"),
                ],
                RepeatedHeader("X-Forwarded-Uri"),
            ),
            (
                ForwardAuthMode::Traefik,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "https, http"),
                    ("x-forwarded-host", "a"),
                    ("x-forwarded-uri", "/"),
                ],
                BadHeader {
                    name: "X-Forwarded-Proto",
                    why: "it holds white space",
                },
            ),
            (
                ForwardAuthMode::Traefik,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "ftp"),
                    ("x-forwarded-host", "a"),
                    ("x-forwarded-uri", "/"),
                ],
                BadHeader {
                    name: "X-Forwarded-Proto",
                    why: "it is neither http nor https",
                },
            ),
            (
                ForwardAuthMode::Traefik,
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-host", "a,b"),
                    ("x-forwarded-uri", "/"),
                ],
                BadHeader {
                    name: "X-Forwarded-Host",
                    why: "it is not one host",
                },
            ),
            (ForwardAuthMode::Envoy, vec![], NoOriginalPath),
        ];
        for (mode, pairs, expected) in rows {
            assert_eq!(
                original_request(
                    &settings(mode),
                    &Method::GET,
                    &uri,
                    &headers(&pairs),
                    &trusted
                ),
                Err(expected.clone()),
                "{mode:?} {pairs:?}"
            );
            assert!(!expected.reason().is_empty());
        }
    }

    #[test]
    fn an_allow_carries_no_store_and_every_identity_header() {
        let response = allow(vec![
            (
                HeaderName::from_static("x-auth-subject"),
                HeaderValue::from_static("alice"),
            ),
            (
                HeaderName::from_static("x-auth-scopes"),
                HeaderValue::from_static(""),
            ),
        ]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(CACHE_CONTROL),
            Some(&HeaderValue::from_static("no-store"))
        );
        assert_eq!(
            response.headers().get("x-auth-scopes"),
            Some(&HeaderValue::from_static(""))
        );
    }
}
