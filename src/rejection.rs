//! Every failure becomes a response here, and only here: one exhaustive match from
//! [`Rejection`] to status, `WWW-Authenticate` challenge and a short JSON body.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::json;

use crate::authn::{AuthnError, ProofError, StoreError, TokenError};
use crate::authz::AuthzError;
use crate::body::{full, Body};
use crate::client_cert::ClientCertError;
use crate::dev::BadTokenRequest;
use crate::endpoints::EndpointError;
use crate::forward::UpstreamError;
use crate::forward_auth::ForwardAuthError;
use crate::route::PathError;
use crate::token::{ExtractError, Scheme};

/// The realm named in every challenge.
pub const REALM: &str = "tokengate";

/// `DPoP-Nonce` (RFC 9449 §8.1).
pub static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// What the challenges of a 401 or 403 say besides the error: the schemes the route takes
/// (one `WWW-Authenticate` field each: `Bearer`, RFC 6750 §3; `DPoP` with `algs`, RFC 9449
/// §7.1), which one the client used (the error goes on that one), and the RFC 9728
/// metadata URL (on every challenge, RFC 9728 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct Challenges<'a> {
    /// The route takes `Bearer`.
    pub bearer: bool,
    /// The route takes `DPoP`: the `algs` value (space-separated algorithm names).
    pub dpop_algs: Option<&'a str>,
    /// The scheme the request's token came with, if it had one.
    pub used: Option<Scheme>,
    /// `resource_metadata="..."` (RFC 9728 §5.1): the metadata URL of the route's protected
    /// resource.
    pub resource_metadata: Option<&'a str>,
    /// `scope="..."` on a 401 (RFC 6750 §3): every scope the route names, space-separated,
    /// when it is a protected resource's route that names any (a 403 `insufficient_scope`
    /// names its own).
    pub scope: Option<&'a str>,
}

impl Default for Challenges<'_> {
    /// `Bearer` only, no metadata.
    fn default() -> Self {
        Challenges {
            bearer: true,
            dpop_algs: None,
            used: None,
            resource_metadata: None,
            scope: None,
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer token at all (RFC 6750 §3.1: challenge without an error code).
    MissingToken,
    /// Only an `access_token` query parameter: an unsupported method, which RFC 6750 §3.1
    /// treats as no authentication (401, challenge without an error code, never forwarded).
    TokenInQuery,
    /// The request is malformed (400 `invalid_request`).
    InvalidRequest(ExtractError),
    /// The token failed a check (401 `invalid_token`).
    InvalidToken(TokenError),
    /// The token's issuer has no keys yet (503, retry).
    KeysUnavailable {
        issuer: String,
    },
    /// The issuer's introspection endpoint cannot answer (503, retry).
    IntrospectionUnavailable {
        issuer: String,
    },
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// A method with lower-case letters (400): upstreams that upper-case methods would run
    /// another method than the rules matched.
    MethodNotUpperCase,
    BadDevTokenRequest(BadTokenRequest),
    /// `/_dev/token` asked by a request that may come from a web page or a foreign host name
    /// (403): the reason.
    DevTokenForbidden(&'static str),
    BodyTooLarge,
    /// The path cannot be read one unambiguous way (400).
    BadPath(PathError),
    /// No `Host`, several, or one that disagrees with an absolute-form target (400).
    AmbiguousHost,
    /// Authenticated, but a required scope is missing (403, RFC 6750 §3.1). Holds the scopes.
    InsufficientScope(String),
    /// Authenticated, but the route's claim or issuer condition fails (403).
    AccessDenied(String),
    Upstream(UpstreamError),
    /// A forward-auth question that cannot be decided: from a peer that is not a trusted
    /// ingress (403), or without one readable original request (400).
    ForwardAuth(ForwardAuthError),
    /// The DPoP proof failed a check (401 `invalid_dpop_proof`, RFC 9449 §7.1).
    InvalidDpopProof(ProofError),
    /// The proof lacks the current server nonce (401 `use_dpop_nonce`, RFC 9449 §8), which
    /// this holds for the `DPoP-Nonce` header.
    UseDpopNonce(String),
    /// The DPoP replay store could not record the proof (503, retry): never accepted.
    ReplayStoreUnavailable(StoreError),
    /// A trusted proxy's client certificate header is repeated, misspelled or unreadable
    /// (400 `invalid_request`).
    ClientCertificate(ClientCertError),
}

impl From<ClientCertError> for Rejection {
    fn from(e: ClientCertError) -> Rejection {
        Rejection::ClientCertificate(e)
    }
}

impl From<AuthzError> for Rejection {
    fn from(e: AuthzError) -> Rejection {
        match e {
            AuthzError::TokenRequired => Rejection::MissingToken,
            AuthzError::WrongAudience => Rejection::InvalidToken(TokenError::Audience),
            AuthzError::InsufficientScope(scopes) => Rejection::InsufficientScope(scopes),
            AuthzError::AccessDenied(why) => Rejection::AccessDenied(why),
        }
    }
}

impl From<EndpointError> for Rejection {
    fn from(e: EndpointError) -> Rejection {
        match e {
            EndpointError::WrongMethod { allow } => Rejection::MethodNotAllowed { allow },
            EndpointError::DevTokenForbidden(why) => Rejection::DevTokenForbidden(why),
            EndpointError::BadDevTokenRequest(e) => Rejection::BadDevTokenRequest(e),
            EndpointError::BodyTooLarge => Rejection::BodyTooLarge,
        }
    }
}

impl From<ForwardAuthError> for Rejection {
    fn from(e: ForwardAuthError) -> Rejection {
        Rejection::ForwardAuth(e)
    }
}

impl From<PathError> for Rejection {
    fn from(e: PathError) -> Rejection {
        Rejection::BadPath(e)
    }
}

impl From<ExtractError> for Rejection {
    fn from(e: ExtractError) -> Rejection {
        Rejection::InvalidRequest(e)
    }
}

impl From<AuthnError> for Rejection {
    fn from(e: AuthnError) -> Rejection {
        match e {
            AuthnError::Invalid(e) => Rejection::InvalidToken(e),
            AuthnError::KeysUnavailable { issuer } => Rejection::KeysUnavailable { issuer },
            AuthnError::InvalidProof(e) => Rejection::InvalidDpopProof(e),
            AuthnError::UseDpopNonce(nonce) => Rejection::UseDpopNonce(nonce),
            AuthnError::ReplayStoreUnavailable(e) => Rejection::ReplayStoreUnavailable(e),
            AuthnError::IntrospectionUnavailable { issuer } => {
                Rejection::IntrospectionUnavailable { issuer }
            }
        }
    }
}

impl Rejection {
    /// A stable code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingToken => "token_missing",
            Rejection::TokenInQuery => "token_in_query",
            Rejection::InvalidRequest(ExtractError::MultipleHeaders) => "authorization_repeated",
            Rejection::InvalidRequest(ExtractError::MalformedHeader) => "authorization_malformed",
            Rejection::InvalidRequest(ExtractError::MultipleMethods) => "token_methods_repeated",
            Rejection::InvalidRequest(ExtractError::ProofWithBearer) => "dpop_proof_with_bearer",
            Rejection::InvalidDpopProof(e) => e.reason(),
            Rejection::UseDpopNonce(_) => "dpop_nonce_required",
            Rejection::ReplayStoreUnavailable(_) => "dpop_replay_store_unavailable",
            Rejection::InvalidToken(e) => e.reason(),
            Rejection::KeysUnavailable { .. } => "keys_unavailable",
            Rejection::IntrospectionUnavailable { .. } => "introspection_unavailable",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed { .. } => "method_not_allowed",
            Rejection::MethodNotUpperCase => "method_invalid",
            Rejection::BadDevTokenRequest(_) => "dev_token_request_invalid",
            Rejection::DevTokenForbidden(_) => "dev_token_forbidden",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::BadPath(_) => "path_invalid",
            Rejection::AmbiguousHost => "host_ambiguous",
            Rejection::InsufficientScope(_) => "insufficient_scope",
            Rejection::AccessDenied(_) => "access_denied",
            Rejection::Upstream(e) => e.reason(),
            Rejection::ForwardAuth(e) => e.reason(),
            Rejection::ClientCertificate(e) => e.reason(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingToken
            | Rejection::TokenInQuery
            | Rejection::InvalidToken(_)
            | Rejection::InvalidDpopProof(_)
            | Rejection::UseDpopNonce(_) => StatusCode::UNAUTHORIZED,
            Rejection::InvalidRequest(_)
            | Rejection::BadDevTokenRequest(_)
            | Rejection::BadPath(_)
            | Rejection::AmbiguousHost
            | Rejection::ClientCertificate(_)
            | Rejection::MethodNotUpperCase => StatusCode::BAD_REQUEST,
            Rejection::InsufficientScope(_)
            | Rejection::AccessDenied(_)
            | Rejection::DevTokenForbidden(_)
            | Rejection::ForwardAuth(ForwardAuthError::UntrustedPeer) => StatusCode::FORBIDDEN,
            Rejection::ForwardAuth(_) => StatusCode::BAD_REQUEST,
            Rejection::Upstream(UpstreamError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Rejection::Upstream(UpstreamError::Unreachable(_) | UpstreamError::Protocol(_)) => {
                StatusCode::BAD_GATEWAY
            }
            Rejection::Upstream(UpstreamError::ClientBodyTimeout) => StatusCode::REQUEST_TIMEOUT,
            Rejection::Upstream(UpstreamError::Overloaded) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::KeysUnavailable { .. }
            | Rejection::IntrospectionUnavailable { .. }
            | Rejection::ReplayStoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The response: status, `WWW-Authenticate` fields as `challenges` describe them
    /// (401 and 403 only), the JSON body, and the headers a refusal needs (`Retry-After`,
    /// `Allow`, `DPoP-Nonce`, `Connection: close`).
    pub fn into_response(self, challenges: &Challenges<'_>) -> Response<Body> {
        let status = self.status();
        // `challenge`: `None`, no WWW-Authenticate; `Some(None)`, bare challenges;
        // `Some(Some(error))`, the error on the challenge of the scheme it concerns.
        let (error, description, challenge): (&str, String, Option<Option<ChallengeError>>) =
            match &self {
                Rejection::MissingToken => (
                    "unauthorized",
                    "an access token is required".to_owned(),
                    Some(None),
                ),
                Rejection::TokenInQuery => (
                    "unauthorized",
                    "access tokens are not accepted in the query string; send Authorization: Bearer"
                        .to_owned(),
                    Some(None),
                ),
                Rejection::InvalidRequest(e) => (
                    "invalid_request",
                    e.to_string(),
                    Some(Some(ChallengeError::on_used("invalid_request", e.to_string()))),
                ),
                Rejection::InvalidToken(e) => (
                    "invalid_token",
                    e.to_string(),
                    Some(Some(ChallengeError::on_used("invalid_token", e.to_string()))),
                ),
                Rejection::InvalidDpopProof(e) => (
                    "invalid_dpop_proof",
                    e.to_string(),
                    Some(Some(ChallengeError::on_dpop("invalid_dpop_proof", e.to_string()))),
                ),
                Rejection::UseDpopNonce(_) => (
                    "use_dpop_nonce",
                    USE_NONCE.to_owned(),
                    Some(Some(ChallengeError::on_dpop("use_dpop_nonce", USE_NONCE.to_owned()))),
                ),
                Rejection::KeysUnavailable { .. } => (
                    "temporarily_unavailable",
                    "the token's issuer keys are not available yet; try again shortly".to_owned(),
                    None,
                ),
                Rejection::IntrospectionUnavailable { .. } => (
                    "temporarily_unavailable",
                    "the token's issuer cannot be asked about it now; try again shortly".to_owned(),
                    None,
                ),
                Rejection::ReplayStoreUnavailable(e) => (
                    "temporarily_unavailable",
                    format!("{e}; try again shortly"),
                    None,
                ),
                Rejection::NotFound => ("not_found", "no such route".to_owned(), None),
                Rejection::MethodNotAllowed { .. } => (
                    "method_not_allowed",
                    "the route does not accept this method".to_owned(),
                    None,
                ),
                Rejection::BadDevTokenRequest(e) => ("invalid_request", e.to_string(), None),
                Rejection::MethodNotUpperCase => (
                    "invalid_request",
                    "methods are written in upper case".to_owned(),
                    None,
                ),
                Rejection::DevTokenForbidden(why) => ("access_denied", (*why).to_owned(), None),
                Rejection::BodyTooLarge => (
                    "invalid_request",
                    "the request body is too large".to_owned(),
                    None,
                ),
                Rejection::BadPath(e) => ("invalid_request", e.to_string(), None),
                Rejection::AmbiguousHost => (
                    "invalid_request",
                    "the request must name its host once (Host), and agree with its target"
                        .to_owned(),
                    None,
                ),
                Rejection::InsufficientScope(scopes) => (
                    "insufficient_scope",
                    format!("the token lacks a required scope: {scopes}"),
                    Some(Some(ChallengeError {
                        code: "insufficient_scope",
                        description: None,
                        scope: Some(scopes.clone()),
                        dpop_only: false,
                    })),
                ),
                Rejection::AccessDenied(why) => ("access_denied", why.clone(), None),
                Rejection::ForwardAuth(e @ ForwardAuthError::UntrustedPeer) => {
                    ("access_denied", e.to_string(), None)
                }
                Rejection::ForwardAuth(e) => ("invalid_request", e.to_string(), None),
                Rejection::ClientCertificate(e) => ("invalid_request", e.to_string(), None),
                Rejection::Upstream(e) => (
                    match e {
                        UpstreamError::Timeout => "upstream_timeout",
                        UpstreamError::ClientBodyTimeout => "request_timeout",
                        UpstreamError::Overloaded => "over_capacity",
                        _ => "bad_gateway",
                    },
                    e.to_string(),
                    None,
                ),
            };
        let body = json!({"error": error, "error_description": description}).to_string();
        let mut response = Response::new(full(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(error) = challenge {
            let scope = challenges
                .scope
                .filter(|_| status == StatusCode::UNAUTHORIZED);
            for c in challenge_fields(challenges, error.as_ref(), scope) {
                if let Ok(value) = HeaderValue::from_str(&c) {
                    headers.append(WWW_AUTHENTICATE, value);
                }
            }
        }
        match self {
            Rejection::KeysUnavailable { .. }
            | Rejection::IntrospectionUnavailable { .. }
            | Rejection::ReplayStoreUnavailable(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Rejection::MethodNotAllowed { allow } => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            Rejection::UseDpopNonce(nonce) => {
                if let Ok(value) = HeaderValue::from_str(&nonce) {
                    headers.insert(DPOP_NONCE.clone(), value);
                }
            }
            Rejection::Upstream(UpstreamError::Overloaded) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of the body was never read: the HTTP/1.1 connection cannot be reused.
            Rejection::Upstream(UpstreamError::ClientBodyTimeout) => {
                headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

const USE_NONCE: &str = "the DPoP proof must carry the nonce given in DPoP-Nonce";

/// The error parameters of one challenge.
struct ChallengeError {
    code: &'static str,
    description: Option<String>,
    scope: Option<String>,
    /// The error is about DPoP itself (`invalid_dpop_proof`, `use_dpop_nonce`).
    dpop_only: bool,
}

impl ChallengeError {
    fn on_used(code: &'static str, description: String) -> ChallengeError {
        ChallengeError {
            code,
            description: Some(description),
            scope: None,
            dpop_only: false,
        }
    }

    fn on_dpop(code: &'static str, description: String) -> ChallengeError {
        ChallengeError {
            dpop_only: true,
            ..ChallengeError::on_used(code, description)
        }
    }
}

/// One `WWW-Authenticate` value per scheme the route takes, `Bearer` first unless the other
/// carries the error; `error` goes on the challenge of the scheme the client used (RFC 9449
/// §7.1), on `DPoP` for an error about DPoP itself, or else on the first one. With neither
/// scheme listed, `Bearer` is, so a 401 always says how to authenticate. `scope` (a 401's,
/// the route's scopes) goes on every challenge, before `resource_metadata`.
fn challenge_fields(
    challenges: &Challenges<'_>,
    error: Option<&ChallengeError>,
    scope: Option<&str>,
) -> Vec<String> {
    let mut schemes = Vec::with_capacity(2);
    if challenges.bearer || challenges.dpop_algs.is_none() {
        schemes.push(Scheme::Bearer);
    }
    if challenges.dpop_algs.is_some() {
        schemes.push(Scheme::Dpop);
    }
    let carrier = match error {
        None => None,
        Some(e) if e.dpop_only => Some(Scheme::Dpop),
        Some(_) => challenges
            .used
            .filter(|used| schemes.contains(used))
            .or(schemes.first().copied()),
    };
    // The challenge with the error comes first: clients that read only the first (or the
    // start of the joined field, as requests-oauth2client does for `use_dpop_nonce`) see it.
    if let Some(carrier) = carrier {
        schemes.sort_by_key(|s| *s != carrier);
    }
    schemes
        .into_iter()
        .map(|scheme| {
            let mut c = format!("{} realm=\"{REALM}\"", scheme.name());
            if let (Scheme::Dpop, Some(algs)) = (scheme, challenges.dpop_algs) {
                c.push_str(&format!(", algs=\"{}\"", quotable(algs)));
            }
            if let Some(e) = error.filter(|_| carrier == Some(scheme)) {
                c.push_str(&format!(", error=\"{}\"", e.code));
                if let Some(d) = &e.description {
                    c.push_str(&format!(", error_description=\"{}\"", quotable(d)));
                }
                if let Some(scope) = &e.scope {
                    c.push_str(&format!(", scope=\"{}\"", quotable(scope)));
                }
            }
            if let Some(scope) = scope.filter(|_| error.is_none_or(|e| e.scope.is_none())) {
                c.push_str(&format!(", scope=\"{}\"", quotable(scope)));
            }
            if let Some(url) = challenges.resource_metadata {
                c.push_str(&format!(", resource_metadata=\"{}\"", quotable(url)));
            }
            c
        })
        .collect()
}

/// RFC 6750 §3: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<Body>, name: http::header::HeaderName) -> Option<String> {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[test]
    fn missing_token_is_a_bare_challenge() {
        let r = Rejection::MissingToken.into_response(&Challenges::default());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, WWW_AUTHENTICATE).as_deref(),
            Some("Bearer realm=\"tokengate\"")
        );
    }

    #[test]
    fn invalid_token_names_the_check() {
        let r = Rejection::InvalidToken(TokenError::Expired).into_response(&Challenges::default());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, WWW_AUTHENTICATE).as_deref(),
            Some("Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the token has expired\"")
        );
    }

    #[test]
    fn descriptions_cannot_break_the_challenge() {
        let r = Rejection::InvalidToken(TokenError::Claim("a\"b\\c\u{7}".into()))
            .into_response(&Challenges::default());
        let c = header(&r, WWW_AUTHENTICATE).unwrap_or_default();
        assert!(
            c.ends_with("error_description=\"the claim `a'b'c?` does not match\""),
            "{c}"
        );
    }

    #[test]
    fn insufficient_scope_names_the_scopes() {
        let r =
            Rejection::InsufficientScope("read write".into()).into_response(&Challenges::default());
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header(&r, WWW_AUTHENTICATE).as_deref(),
            Some("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"read write\"")
        );
    }

    #[test]
    fn resource_metadata_joins_the_challenge() {
        let r = Rejection::MissingToken.into_response(&Challenges {
            resource_metadata: Some("https://api.example.com/.well-known/oauth-protected-resource"),
            ..Challenges::default()
        });
        assert_eq!(
            header(&r, WWW_AUTHENTICATE).as_deref(),
            Some("Bearer realm=\"tokengate\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\"")
        );
    }

    /// RFC 9728 §5.1 and RFC 6750 §3 together, as the MCP authorization spec asks: every
    /// 401 of a resource's route names the metadata and the route's scopes; a 403
    /// `insufficient_scope` names the scopes it was given (every scope the route needs) and
    /// the metadata; a 400 names the metadata only.
    #[test]
    fn a_resource_challenge_names_its_metadata_and_the_routes_scope() {
        let url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
        let mcp = Challenges {
            resource_metadata: Some(url),
            scope: Some("mcp:tools mcp:admin"),
            ..Challenges::default()
        };
        let meta = format!("resource_metadata=\"{url}\"");
        let rows = [
            (
                Rejection::MissingToken,
                format!("Bearer realm=\"tokengate\", scope=\"mcp:tools mcp:admin\", {meta}"),
            ),
            (
                Rejection::TokenInQuery,
                format!("Bearer realm=\"tokengate\", scope=\"mcp:tools mcp:admin\", {meta}"),
            ),
            (
                Rejection::InvalidToken(TokenError::Audience),
                format!("Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the token is not meant for this audience\", scope=\"mcp:tools mcp:admin\", {meta}"),
            ),
            (
                Rejection::InsufficientScope("mcp:tools mcp:admin".into()),
                format!("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\", {meta}"),
            ),
            (
                Rejection::InvalidRequest(ExtractError::MultipleHeaders),
                format!("Bearer realm=\"tokengate\", error=\"invalid_request\", error_description=\"more than one Authorization header\", {meta}"),
            ),
        ];
        for (rejection, expected) in rows {
            let what = format!("{rejection:?}");
            let r = rejection.into_response(&mcp);
            assert_eq!(header(&r, WWW_AUTHENTICATE), Some(expected), "{what}");
        }
        // With DPoP too: the scope and the metadata on both challenges.
        let both = Challenges {
            dpop_algs: Some("ES256"),
            ..mcp
        };
        let r = Rejection::MissingToken.into_response(&both);
        let fields: Vec<String> = r
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        assert_eq!(
            fields,
            [
                format!("Bearer realm=\"tokengate\", scope=\"mcp:tools mcp:admin\", {meta}"),
                format!("DPoP realm=\"tokengate\", algs=\"ES256\", scope=\"mcp:tools mcp:admin\", {meta}"),
            ]
        );
        // No challenge, no parameters.
        let r = Rejection::KeysUnavailable { issuer: "x".into() }.into_response(&mcp);
        assert!(header(&r, WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn the_challenge_with_the_error_comes_first() {
        let dpop = Challenges {
            dpop_algs: Some("ES256"),
            used: Some(Scheme::Dpop),
            ..Challenges::default()
        };
        let all = |r: &Response<Body>| -> Vec<String> {
            r.headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect()
        };
        let r = Rejection::UseDpopNonce("n".into()).into_response(&dpop);
        assert_eq!(
            all(&r),
            [
                "DPoP realm=\"tokengate\", algs=\"ES256\", error=\"use_dpop_nonce\", error_description=\"the DPoP proof must carry the nonce given in DPoP-Nonce\"",
                "Bearer realm=\"tokengate\""
            ]
        );
        let r = Rejection::MissingToken.into_response(&dpop);
        assert_eq!(
            all(&r),
            [
                "Bearer realm=\"tokengate\"",
                "DPoP realm=\"tokengate\", algs=\"ES256\""
            ]
        );
        let bearer_used = Challenges {
            used: Some(Scheme::Bearer),
            ..dpop
        };
        let r = Rejection::InvalidToken(TokenError::Expired).into_response(&bearer_used);
        assert!(all(&r)[0].starts_with("Bearer realm=\"tokengate\", error=\"invalid_token\""));
    }

    #[test]
    fn upstream_failures() {
        assert_eq!(
            Rejection::Upstream(UpstreamError::Timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            Rejection::Upstream(UpstreamError::Unreachable("x".into())).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            Rejection::AccessDenied("x".into()).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            Rejection::InvalidRequest(ExtractError::MultipleMethods).status(),
            StatusCode::BAD_REQUEST
        );
        let r = Rejection::TokenInQuery.into_response(&Challenges::default());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, WWW_AUTHENTICATE).as_deref(),
            Some("Bearer realm=\"tokengate\"")
        );
        let r =
            Rejection::KeysUnavailable { issuer: "x".into() }.into_response(&Challenges::default());
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, RETRY_AFTER).as_deref(), Some("5"));
        assert!(header(&r, WWW_AUTHENTICATE).is_none());
        assert_eq!(Rejection::NotFound.status(), StatusCode::NOT_FOUND);
    }

    /// One row per variant: status, the body's `error`, the challenge (`None`: no
    /// `WWW-Authenticate`) and any other header the response must carry.
    #[allow(clippy::type_complexity)]
    fn pinned() -> Vec<(
        Rejection,
        u16,
        &'static str,
        Option<&'static str>,
        Option<(&'static str, &'static str)>,
    )> {
        let bearer = Some("Bearer realm=\"tokengate\"");
        vec![
            (Rejection::MissingToken, 401, "unauthorized", bearer, None),
            (Rejection::TokenInQuery, 401, "unauthorized", bearer, None),
            (
                Rejection::InvalidRequest(ExtractError::MultipleHeaders),
                400,
                "invalid_request",
                Some("Bearer realm=\"tokengate\", error=\"invalid_request\", error_description=\"more than one Authorization header\""),
                None,
            ),
            (
                Rejection::InvalidToken(TokenError::Expired),
                401,
                "invalid_token",
                Some("Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the token has expired\""),
                None,
            ),
            (
                Rejection::KeysUnavailable { issuer: "https://idp".into() },
                503,
                "temporarily_unavailable",
                None,
                Some(("retry-after", "5")),
            ),
            (
                Rejection::IntrospectionUnavailable { issuer: "https://idp".into() },
                503,
                "temporarily_unavailable",
                None,
                Some(("retry-after", "5")),
            ),
            (
                Rejection::InvalidToken(TokenError::Inactive),
                401,
                "invalid_token",
                Some("Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the token is not active\""),
                None,
            ),
            (Rejection::NotFound, 404, "not_found", None, None),
            (
                Rejection::MethodNotAllowed { allow: "GET, HEAD" },
                405,
                "method_not_allowed",
                None,
                Some(("allow", "GET, HEAD")),
            ),
            (Rejection::MethodNotUpperCase, 400, "invalid_request", None, None),
            (
                Rejection::BadDevTokenRequest(BadTokenRequest("x")),
                400,
                "invalid_request",
                None,
                None,
            ),
            (Rejection::DevTokenForbidden("x"), 403, "access_denied", None, None),
            (Rejection::BodyTooLarge, 413, "invalid_request", None, None),
            (Rejection::BadPath(PathError::Backslash), 400, "invalid_request", None, None),
            (Rejection::AmbiguousHost, 400, "invalid_request", None, None),
            (
                Rejection::ClientCertificate(ClientCertError::Repeated),
                400,
                "invalid_request",
                None,
                None,
            ),
            (
                Rejection::InsufficientScope("admin".into()),
                403,
                "insufficient_scope",
                Some("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"admin\""),
                None,
            ),
            (Rejection::AccessDenied("x".into()), 403, "access_denied", None, None),
            (Rejection::Upstream(UpstreamError::Unreachable("x".into())), 502, "bad_gateway", None, None),
            (Rejection::Upstream(UpstreamError::Protocol("x".into())), 502, "bad_gateway", None, None),
            (Rejection::Upstream(UpstreamError::Timeout), 504, "upstream_timeout", None, None),
            (
                Rejection::Upstream(UpstreamError::ClientBodyTimeout),
                408,
                "request_timeout",
                None,
                Some(("connection", "close")),
            ),
            (
                Rejection::Upstream(UpstreamError::Overloaded),
                503,
                "over_capacity",
                None,
                Some(("retry-after", "1")),
            ),
            (
                Rejection::ForwardAuth(ForwardAuthError::UntrustedPeer),
                403,
                "access_denied",
                None,
                None,
            ),
            (
                Rejection::InvalidRequest(ExtractError::ProofWithBearer),
                400,
                "invalid_request",
                Some("Bearer realm=\"tokengate\", error=\"invalid_request\", error_description=\"a DPoP proof came with Authorization: Bearer; a DPoP-bound token is sent as Authorization: DPoP\""),
                None,
            ),
            (
                Rejection::InvalidDpopProof(ProofError::Replayed),
                401,
                "invalid_dpop_proof",
                Some("Bearer realm=\"tokengate\""),
                None,
            ),
            (
                Rejection::UseDpopNonce("n0nce".into()),
                401,
                "use_dpop_nonce",
                Some("Bearer realm=\"tokengate\""),
                Some(("dpop-nonce", "n0nce")),
            ),
            (
                Rejection::ReplayStoreUnavailable(StoreError::Unreachable),
                503,
                "temporarily_unavailable",
                None,
                Some(("retry-after", "5")),
            ),
            (
                Rejection::ForwardAuth(ForwardAuthError::RepeatedHeader("X-Original-URI")),
                400,
                "invalid_request",
                None,
                None,
            ),
        ]
    }

    /// Does not compile when a variant is added without a row in [`pinned`].
    fn has_a_row(r: &Rejection) {
        match r {
            Rejection::MissingToken
            | Rejection::TokenInQuery
            | Rejection::InvalidRequest(_)
            | Rejection::InvalidToken(_)
            | Rejection::KeysUnavailable { .. }
            | Rejection::IntrospectionUnavailable { .. }
            | Rejection::NotFound
            | Rejection::MethodNotAllowed { .. }
            | Rejection::MethodNotUpperCase
            | Rejection::BadDevTokenRequest(_)
            | Rejection::DevTokenForbidden(_)
            | Rejection::BodyTooLarge
            | Rejection::BadPath(_)
            | Rejection::AmbiguousHost
            | Rejection::InsufficientScope(_)
            | Rejection::AccessDenied(_)
            | Rejection::Upstream(_)
            | Rejection::ForwardAuth(_)
            | Rejection::InvalidDpopProof(_)
            | Rejection::UseDpopNonce(_)
            | Rejection::ReplayStoreUnavailable(_)
            | Rejection::ClientCertificate(_) => {}
        }
    }

    #[test]
    fn every_variant_is_pinned_to_its_status_and_challenge() {
        for (rejection, status, error, challenge, extra) in pinned() {
            has_a_row(&rejection);
            let what = format!("{rejection:?}");
            assert_eq!(rejection.status().as_u16(), status, "{what}");
            let reason = rejection.reason();
            assert!(!reason.is_empty(), "{what}");
            let response = rejection.into_response(&Challenges::default());
            assert_eq!(response.status().as_u16(), status, "{what}");
            assert_eq!(
                header(&response, WWW_AUTHENTICATE).as_deref(),
                challenge,
                "{what}"
            );
            assert_eq!(
                header(&response, CONTENT_TYPE).as_deref(),
                Some("application/json"),
                "{what}"
            );
            if let Some((name, value)) = extra {
                let name = http::header::HeaderName::from_static(name);
                assert_eq!(header(&response, name).as_deref(), Some(value), "{what}");
            }
            let body = whole_body(response.into_body());
            let json: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(json) => json,
                Err(e) => panic!("{what}: the body is not JSON: {e}"),
            };
            assert_eq!(json["error"], error, "{what}");
            assert!(
                json["error_description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what}"
            );
        }
    }

    /// The whole body of a response made by `into_response` (always one full frame).
    fn whole_body(body: Body) -> Vec<u8> {
        use http_body_util::BodyExt;
        let runtime = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => panic!("runtime: {e}"),
        };
        match runtime.block_on(body.collect()) {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(e) => panic!("body: {e}"),
        }
    }
}
