//! Stage 1: method + canonical path → the route that decides what the request needs.
//!
//! One canonical path (RFC 3986 §6) is computed per request and used both to match rules and
//! to forward, so the rule that matched is the rule for the path the upstream sees. Anything
//! whose meaning could differ between tokengate and an upstream is refused rather than
//! guessed at: encoded `/` or `\`, raw `\`, control characters, and (by default) `;` path
//! parameters, which Tomcat and Spring strip before routing.

use std::sync::Arc;

use http::Method;

use crate::claims::ClaimRule;

/// Why a request target cannot be routed (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%2F` or `%5C` (either case): a separator that some upstreams decode before routing
    /// and others do not.
    #[error("the path has an encoded slash or backslash")]
    EncodedSeparator,
    /// A raw `\`, which some servers read as `/`.
    #[error("the path has a backslash")]
    Backslash,
    /// A control character or DEL, raw or percent-encoded, or a raw space.
    #[error("the path has a control character")]
    ControlCharacter,
    /// A raw `;` while `paths.allow_parameters` is off (`%3B` stays encoded and is allowed).
    #[error("the path has ; parameters")]
    Parameters,
    /// A `%` not followed by two hex digits, or a raw `#`, `?` or non-ASCII byte (RFC 3986
    /// §3.3 allows none of them in a path).
    #[error("the path has a malformed percent-encoding")]
    BadEncoding,
    /// The path does not start with `/` (an asterisk-form `*` target, RFC 9112 §3.2.4).
    #[error("the request target is not a path")]
    NotOriginForm,
}

/// A request path in canonical form, plus the form rules are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    /// Forwarded upstream: unreserved characters decoded, other escapes upper-cased, dot
    /// segments removed, slashes merged.
    pub path: String,
    /// Matched against rules: `path`, without `;` parameters when they are allowed, and
    /// lower-cased when matching is case-insensitive.
    pub matched: String,
}

/// How paths are read (`paths:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// `paths.allow_parameters`: accept `;` path parameters, forward them, and match without
    /// them. Off by default, when a `;` is refused (400).
    pub allow_parameters: bool,
    /// `paths.case_insensitive`: match paths and patterns ASCII-lower-cased (the forwarded
    /// path keeps its case).
    pub case_insensitive: bool,
}

/// `scheme://host[:port]` as RFC 6454 §6.2 serialises an origin (lower-case host, default
/// port dropped), from a scheme (`http` or `https`, any case) and a `Host`-style authority,
/// as an ingress or a trusted proxy reports them. `None` for another scheme, or when `host`
/// is not exactly one host (empty, or with a path, user, query, fragment or list in it).
/// This is what a DPoP proof's `htu` origin is compared with.
pub fn origin(scheme: &str, host: &str) -> Option<String> {
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || host.is_empty() || host.contains(',') {
        return None;
    }
    let url = url::Url::parse(&format!("{scheme}://{host}/")).ok()?;
    let bare = url.path() == "/"
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    bare.then(|| url.origin().ascii_serialization())
}

/// Computes the canonical path of a raw (still percent-encoded) path.
pub fn canonicalize(raw: &str, options: PathOptions) -> Result<CanonicalPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    let normalized = normalize_escapes(raw)?;
    if normalized.contains(';') && !options.allow_parameters {
        return Err(PathError::Parameters);
    }
    // Forwarded with its parameters (when allowed), matched without them; both have the same
    // segments, so the rule that matched is the rule for the path the upstream reads.
    let path = remove_dot_segments(&normalized, true);
    let base = if options.allow_parameters {
        remove_dot_segments(&normalized, false)
    } else {
        path.clone()
    };
    let mut matched = match_form(&base);
    if options.case_insensitive {
        matched.make_ascii_lowercase();
    }
    Ok(CanonicalPath { path, matched })
}

/// The form rules are matched against: what an upstream that decodes the path would route
/// on. Escapes are decoded (so `/users/%40me` is `/users/@me` and `/caf%C3%A9` is `/café`),
/// except those that would change the path's structure or be decoded twice (`%25`, `%3B`,
/// `%3F`, `%23`); a trailing slash is dropped, so `/admin/` falls under the `/admin` rule.
fn match_form(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .filter(|v| !matches!(v, b'%' | b';' | b'?' | b'#' | b'/' | b'\\'));
        match decoded {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    if out.len() > 1 && out.last() == Some(&b'/') {
        out.pop();
    }
    // Bytes that are not UTF-8 cannot be written in a pattern: keep the escaped form.
    String::from_utf8(out).unwrap_or_else(|_| path.trim_end_matches('/').to_owned())
}

/// Decodes escapes of unreserved characters, upper-cases the rest, refuses what could be
/// read two ways. Never decodes twice: `%252e` stays `%252E`.
fn normalize_escapes(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::BadEncoding)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                        out.push(char::from(v));
                    }
                    v => {
                        out.push('%');
                        out.push_str(&format!("{v:02X}"));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x20 | 0x7f => return Err(PathError::ControlCharacter),
            b'#' | b'?' => return Err(PathError::BadEncoding),
            0x80..=0xff => return Err(PathError::BadEncoding),
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on segments, merging empty segments (`//`). A trailing slash is kept.
/// Without `keep_parameters`, each kept segment loses its `;` parameters.
fn remove_dot_segments(path: &str, keep_parameters: bool) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (index, raw_segment) in segments.iter().enumerate() {
        // A segment is judged (dot, dot-dot, empty) by its name without `;` parameters, as
        // Tomcat and Spring judge it, whether or not the parameters are kept.
        let name = raw_segment.split(';').next().unwrap_or("");
        match name {
            "." | "" => trailing_slash = index == last,
            ".." => {
                stack.pop();
                trailing_slash = index == last;
            }
            _ => {
                stack.push(if keep_parameters { raw_segment } else { name });
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// A compiled path pattern: `/exact`, `/prefix/**`, `/users/*/profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<PatternSegment>,
    /// Ends in `/**`: matches the prefix itself and anything below it.
    prefix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Any,
}

impl PathPattern {
    /// Compiles a pattern written in the configuration.
    pub fn parse(text: &str, case_insensitive: bool) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err("a path pattern starts with /".into());
        }
        let mut body = &text[1..];
        let prefix = body == "**" || body.ends_with("/**");
        if prefix {
            body = body
                .strip_suffix("**")
                .unwrap_or(body)
                .trim_end_matches('/');
        }
        let mut segments = Vec::new();
        if !body.is_empty() {
            for segment in body.split('/') {
                match segment {
                    "*" => segments.push(PatternSegment::Any),
                    "" | "." | ".." => return Err(format!("`{text}` has an empty or dot segment")),
                    s if s.contains('*') => {
                        return Err(format!(
                            "`{text}`: * stands for a whole segment, and ** only at the end"
                        ))
                    }
                    s if s.contains(['%', ';', '?', '#', '\\']) => {
                        return Err(format!(
                            "`{text}`: write patterns in decoded form, without ; ? # % or \\"
                        ))
                    }
                    s => segments.push(PatternSegment::Literal(if case_insensitive {
                        s.to_ascii_lowercase()
                    } else {
                        s.to_owned()
                    })),
                }
            }
        }
        let trailing = text.len() > 1 && text.ends_with('/') && !prefix;
        if trailing {
            return Err(format!(
                "`{text}` ends with /; write `{}` or `{}/**`",
                text.trim_end_matches('/'),
                text.trim_end_matches('/')
            ));
        }
        Ok(PathPattern { segments, prefix })
    }

    /// Matches a canonical (matching) path.
    pub fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        // Matching paths carry no trailing slash (see `match_form`); tolerate one anyway.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = rest.split('/').filter(|_| !rest.is_empty());
        for pattern in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match pattern {
                PatternSegment::Literal(l) => l == part,
                PatternSegment::Any => !part.is_empty(),
            };
            if !ok {
                return false;
            }
        }
        self.prefix || parts.next().is_none()
    }

    /// True when every path this pattern matches is also matched by `other`.
    pub fn is_covered_by(&self, other: &PathPattern) -> bool {
        if other.segments.len() > self.segments.len()
            || (!other.prefix && (self.prefix || other.segments.len() != self.segments.len()))
        {
            return false;
        }
        other
            .segments
            .iter()
            .zip(&self.segments)
            .all(|(o, s)| match (o, s) {
                (PatternSegment::Any, _) => true,
                (PatternSegment::Literal(a), PatternSegment::Literal(b)) => a == b,
                (PatternSegment::Literal(_), PatternSegment::Any) => false,
            })
    }
}

/// Whether a route needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No token needed; one that is sent is not verified and gives no identity.
    None,
    /// Verified if present (and refused if invalid); anonymous if absent.
    Optional,
    /// A valid token needed: without one the request is refused (401).
    Required,
}

/// Whether a route takes DPoP-bound tokens (RFC 9449), `routes[].dpop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopMode {
    /// `Authorization: DPoP` is not a scheme this route knows (treated as no token), and a
    /// DPoP-bound token sent as `Bearer` is still refused (RFC 9449 §7.2).
    Off,
    /// Bearer tokens as usual, and DPoP-bound tokens with a valid proof (the default).
    #[default]
    Allowed,
    /// Only DPoP-bound tokens with a valid proof.
    Required,
}

impl DpopMode {
    /// Whether `Authorization: Bearer` is a scheme this route accepts.
    pub fn accepts_bearer(self) -> bool {
        self != DpopMode::Required
    }

    /// Whether `Authorization: DPoP` is a scheme this route accepts.
    pub fn accepts_dpop(self) -> bool {
        self != DpopMode::Off
    }
}

/// What a route asks of the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Whether a token is needed, optional or ignored.
    pub auth: AuthMode,
    /// All of these scopes.
    pub scopes: Vec<String>,
    /// At least one of these scopes.
    pub any_scopes: Vec<String>,
    /// Claim assertions the token must all satisfy.
    pub claims: Vec<ClaimRule>,
    /// Only tokens of these issuers.
    pub issuers: Option<Vec<String>>,
    /// Which schemes (Bearer, DPoP) the route accepts.
    pub dpop: DpopMode,
    /// The protected resource (RFC 9728) this route belongs to, when one covers it.
    pub resource: Option<ResourceBinding>,
}

/// What belonging to a protected resource (`resources:`, or the `resource:` that covers
/// every route) adds to a route's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceBinding {
    /// The resource's position in `Settings::resources`: its metadata URL is named in every
    /// challenge of the route (RFC 9728 §5.1).
    pub index: usize,
    /// The token's `aud` must name one of these (RFC 8707 §2, checked in `authz`); empty:
    /// the issuer's `audiences` are the only audience check.
    pub audiences: Vec<String>,
    /// `Authorization` is removed before forwarding (an MCP resource's default: the client's
    /// token never passes through to the server).
    pub strip_authorization: bool,
}

impl Rule {
    /// No token needed: anyone may pass (a token sent is not even looked at).
    pub fn public() -> Rule {
        Rule {
            auth: AuthMode::None,
            ..Rule::required()
        }
    }

    /// A valid token needed, and nothing more of it.
    pub fn required() -> Rule {
        Rule {
            auth: AuthMode::Required,
            scopes: Vec::new(),
            any_scopes: Vec::new(),
            claims: Vec::new(),
            issuers: None,
            dpop: DpopMode::Allowed,
            resource: None,
        }
    }

    /// Every scope the rule names: all of `scopes`, then `any_scopes`, each once. A token
    /// with all of them passes the scope checks, so this is what a challenge's `scope`
    /// names (RFC 6750 §3, and the MCP authorization spec's "all scopes needed").
    pub fn scopes_needed(&self) -> Vec<&str> {
        let mut needed: Vec<&str> = Vec::new();
        for scope in self.scopes.iter().chain(&self.any_scopes) {
            if !needed.contains(&scope.as_str()) {
                needed.push(scope);
            }
        }
        needed
    }
}

/// One `routes:` entry, compiled.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// As written, for logs and `tokengate check`.
    pub name: String,
    /// The compiled `path`, matched against [`CanonicalPath::matched`].
    pub pattern: PathPattern,
    /// `None`: every method.
    pub methods: Option<Vec<Method>>,
    /// What a request this route matches must satisfy.
    pub rule: Arc<Rule>,
}

/// The ordered rules and the default; the first match decides.
#[derive(Debug, Clone)]
pub struct RuleTable {
    /// The `routes:` entries, in configuration order.
    pub routes: Vec<RouteRule>,
    /// The rule for a request no route matches (`default:`).
    pub default: Arc<Rule>,
}

impl RuleTable {
    /// The first route whose methods include `method` and whose pattern matches the path's
    /// matching form, with its rule; `(None, default)` when none does.
    pub fn match_request(
        &self,
        method: &Method,
        path: &CanonicalPath,
    ) -> (Option<&RouteRule>, &Arc<Rule>) {
        for route in &self.routes {
            let method_ok = route.methods.as_ref().is_none_or(|m| m.contains(method));
            if method_ok && route.pattern.matches(&path.matched) {
                return (Some(route), &route.rule);
            }
        }
        (None, &self.default)
    }

    /// Routes that can never match because an earlier route covers them, for `check`.
    pub fn unreachable(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (i, later) in self.routes.iter().enumerate() {
            for (j, earlier) in self.routes[..i].iter().enumerate() {
                let methods_covered = match (&earlier.methods, &later.methods) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
                };
                if methods_covered && later.pattern.is_covered_by(&earlier.pattern) {
                    found.push((i, j));
                    break;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_origin_is_one_host_serialised_once() {
        assert_eq!(
            origin("HTTPS", "API.example.com:443").as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            origin("http", "127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for (scheme, host) in [
            ("ftp", "a.example"),
            ("https", ""),
            ("https", "a.example/x"),
            ("https", "user@a.example"),
            ("https", "a.example?x"),
            ("https", "a.example#x"),
            ("https", "a.example, b.example"),
        ] {
            assert_eq!(origin(scheme, host), None, "{scheme} {host}");
        }
    }

    use super::*;

    const STRICT: PathOptions = PathOptions {
        allow_parameters: false,
        case_insensitive: false,
    };
    const PARAMS: PathOptions = PathOptions {
        allow_parameters: true,
        case_insensitive: false,
    };

    fn canon(raw: &str) -> Result<String, PathError> {
        canonicalize(raw, STRICT).map(|c| c.path)
    }

    #[test]
    fn canonical_paths() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/a/b/", Ok("/a/b/")),
            ("//admin", Ok("/admin")),
            ("/a//b///c", Ok("/a/b/c")),
            ("/public/../admin", Ok("/admin")),
            ("/public/./admin", Ok("/public/admin")),
            ("/../../etc/passwd", Ok("/etc/passwd")),
            ("/a/..", Ok("/")),
            ("/a/.", Ok("/a/")),
            ("/public/%2e%2e/admin", Ok("/admin")),
            ("/public/%2E%2E/admin", Ok("/admin")),
            ("/public/.%2e/admin", Ok("/admin")),
            ("/%61dmin", Ok("/admin")),
            ("/a%7eb", Ok("/a~b")),
            ("/a%3fb", Ok("/a%3Fb")),
            ("/a%20b", Ok("/a%20b")),
            ("/%252e%252e/admin", Ok("/%252e%252e/admin")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/public%2fadmin", Err(PathError::EncodedSeparator)),
            ("/public%2Fadmin", Err(PathError::EncodedSeparator)),
            ("/public%5cadmin", Err(PathError::EncodedSeparator)),
            ("/public\\admin", Err(PathError::Backslash)),
            ("/a%00b", Err(PathError::ControlCharacter)),
            ("/a%0ab", Err(PathError::ControlCharacter)),
            ("/a%7fb", Err(PathError::ControlCharacter)),
            ("/a%zzb", Err(PathError::BadEncoding)),
            ("/a%2", Err(PathError::BadEncoding)),
            ("/admin;x=1/y", Err(PathError::Parameters)),
            ("/public/..;/admin", Err(PathError::Parameters)),
            ("*", Err(PathError::NotOriginForm)),
            ("admin", Err(PathError::NotOriginForm)),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                canon(raw).as_deref().map_err(|e| *e),
                expected.as_deref().map_err(|e| *e),
                "{raw}"
            );
        }
    }

    #[test]
    fn canonical_is_idempotent() {
        for raw in [
            "/a/../b//c/./d/",
            "/%61%2e%2E/x",
            "/x%252e/y",
            "/caf%c3%a9/",
        ] {
            let once = canon(raw).unwrap_or_default();
            assert_eq!(canon(&once).as_deref(), Ok(once.as_str()), "{raw}");
        }
    }

    #[test]
    fn double_encoding_is_not_decoded_twice() {
        assert_eq!(
            canon("/%252e%252e/admin").as_deref(),
            Ok("/%252e%252e/admin")
        );
        assert_eq!(canon("/%252F").as_deref(), Ok("/%252F"));
        assert_eq!(canon("/%25%32%65").as_deref(), Ok("/%252e"));
    }

    #[test]
    fn match_form_decodes_what_an_upstream_would() {
        let m = |raw: &str| {
            canonicalize(raw, STRICT)
                .map(|c| c.matched)
                .unwrap_or_default()
        };
        assert_eq!(m("/users/%40me"), "/users/@me");
        assert_eq!(m("/caf%C3%A9/menu"), "/café/menu");
        assert_eq!(m("/admin/"), "/admin");
        assert_eq!(m("/"), "/");
        assert_eq!(m("/a%3Fb"), "/a%3Fb");
        assert_eq!(m("/a%23b"), "/a%23b");
        assert_eq!(m("/%252e"), "/%252e");
        assert_eq!(m("/bad%FF"), "/bad%FF");
        let c = canonicalize("/users/%40me/", STRICT).ok();
        assert_eq!(c.map(|c| c.path), Some("/users/%40me/".to_string()));
    }

    #[test]
    fn parameters_are_matched_without_them_when_allowed() {
        let c = canonicalize("/admin;x=1/y", PARAMS).ok();
        assert_eq!(c.as_ref().map(|c| c.matched.as_str()), Some("/admin/y"));
        assert_eq!(c.as_ref().map(|c| c.path.as_str()), Some("/admin;x=1/y"));
        let c = canonicalize("/public/..;/admin", PARAMS).ok();
        assert_eq!(c.as_ref().map(|c| c.matched.as_str()), Some("/admin"));
        // Forwarded with the same segments that were matched.
        assert_eq!(c.map(|c| c.path), Some("/admin".to_string()));
        let c = canonicalize("/admin/.;/..", PARAMS).ok();
        assert_eq!(c.as_ref().map(|c| c.matched.as_str()), Some("/"));
        assert_eq!(c.map(|c| c.path), Some("/".to_string()));
        let c = canonicalize("/public;/x", PARAMS).ok();
        assert_eq!(c.map(|c| c.matched), Some("/public/x".to_string()));
    }

    fn pattern(p: &str) -> PathPattern {
        PathPattern::parse(p, false).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pattern_kinds_and_boundaries() {
        let cases: &[(&str, &str, bool)] = &[
            ("/health", "/health", true),
            ("/health", "/health/", true),
            ("/health", "/healthz", false),
            ("/health", "/health/x", false),
            ("/health", "/Health", false),
            ("/api/**", "/api", true),
            ("/api/**", "/api/", true),
            ("/api/**", "/api/x", true),
            ("/api/**", "/api/x/y/z", true),
            ("/api/**", "/apix", false),
            ("/api/**", "/ap", false),
            ("/api/**", "/", false),
            ("/users/*/profile", "/users/7/profile", true),
            ("/users/*/profile", "/users//profile", false),
            ("/users/*/profile", "/users/profile", false),
            ("/users/*/profile", "/users/7/8/profile", false),
            ("/users/*/profile", "/users/7/profile/x", false),
            ("/users/*/**", "/users/7/anything/here", true),
            ("/users/*/**", "/users", false),
            ("/**", "/", true),
            ("/**", "/anything", true),
            ("/", "/", true),
            ("/", "/x", false),
        ];
        for (p, path, expected) in cases {
            assert_eq!(pattern(p).matches(path), *expected, "{p} vs {path}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "api", "/api/*x", "/a/**/b", "/a/../b", "/a//b", "/a%2f", "/a;b", "/api/",
        ] {
            assert!(PathPattern::parse(p, false).is_err(), "{p}");
        }
    }

    #[test]
    fn case_insensitive_matching() {
        let options = PathOptions {
            allow_parameters: false,
            case_insensitive: true,
        };
        let c = canonicalize("/ADMIN/Users", options).ok();
        assert_eq!(c.as_ref().map(|c| c.matched.as_str()), Some("/admin/users"));
        assert_eq!(c.as_ref().map(|c| c.path.as_str()), Some("/ADMIN/Users"));
        assert!(PathPattern::parse("/Admin/**", true)
            .map(|p| p.matches("/admin/users"))
            .unwrap_or(false));
    }

    #[test]
    fn coverage_finds_unreachable_routes() {
        assert!(pattern("/api/x").is_covered_by(&pattern("/api/**")));
        assert!(pattern("/api/**").is_covered_by(&pattern("/**")));
        assert!(pattern("/users/7").is_covered_by(&pattern("/users/*")));
        assert!(!pattern("/api/**").is_covered_by(&pattern("/api/x")));
        assert!(!pattern("/users/*").is_covered_by(&pattern("/users/7")));
        assert!(!pattern("/api/**").is_covered_by(&pattern("/api")));
    }
}
