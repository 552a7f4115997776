//! CORS as Express's `app.use(cors(...))`: preflights are answered without a token, and
//! every response (401s included) carries the headers, so a browser app can read errors.
//!
//! One policy decides: with `cors:` in policy mode, every `Access-Control-*` header of the
//! upstream's response is removed before tokengate's own are set ([`decorate`]), so a service
//! running its own `cors()` cannot widen what tokengate allows.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use http::{HeaderMap, Method, Response, StatusCode};

use crate::body::{full, Body};
use crate::config::{AllowedOrigins, CorsSettings};

/// A preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// A preflight an upstream may be handed without a token (`cors: { mode: upstream }`): one
/// `Origin`, one `Access-Control-Request-Method`, and no body (no `Transfer-Encoding`, no
/// `Content-Length` other than 0). Browsers never send a body or credentials on a preflight.
pub fn is_well_formed_preflight(method: &Method, headers: &HeaderMap) -> bool {
    let one = |name| headers.get_all(name).iter().count() == 1;
    method == Method::OPTIONS
        && one(ORIGIN)
        && one(ACCESS_CONTROL_REQUEST_METHOD)
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes() == b"0")
}

/// Removes every `Access-Control-*` header (an upstream's CORS answer).
pub fn strip(headers: &mut HeaderMap) {
    let doomed: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Adds `token` to the response's `Vary`, keeping one field: the upstream's entries and ours,
/// each once (compared without case); `Vary: *` stays as it is.
fn vary(headers: &mut HeaderMap, token: &str) {
    let mut entries: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if entries.iter().any(|t| t == "*") {
        headers.insert(VARY, HeaderValue::from_static("*"));
        return;
    }
    if !entries.iter().any(|t| t.eq_ignore_ascii_case(token)) {
        entries.push(token.to_owned());
    }
    let mut unique: Vec<String> = Vec::with_capacity(entries.len());
    for entry in entries {
        if !unique.iter().any(|u| u.eq_ignore_ascii_case(&entry)) {
            unique.push(entry);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&unique.join(", ")) {
        headers.insert(VARY, v);
    }
}

/// The `Access-Control-Allow-Origin` value for this request's `Origin`, if it is allowed.
fn allowed_origin(cors: &CorsSettings, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    match &cors.allow_origins {
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::List(list) => list.iter().find(|o| *o == origin).cloned(),
    }
}

/// 204 with the allowed methods and headers (no CORS headers when the origin is not allowed,
/// which makes the browser refuse the request).
pub fn preflight(cors: &CorsSettings, request: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    if let AllowedOrigins::List(_) = cors.allow_origins {
        vary(headers, "Origin");
    }
    let Some(origin) = allowed_origin(cors, request) else {
        return response;
    };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, cors.allow_methods.clone());
    match (
        &cors.allow_headers,
        request.get(ACCESS_CONTROL_REQUEST_HEADERS),
    ) {
        (Some(configured), _) => {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, configured.clone());
        }
        (None, Some(asked)) => {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            vary(headers, "Access-Control-Request-Headers");
        }
        (None, None) => {}
    }
    if let Some(max_age) = &cors.max_age {
        headers.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
    }
    if cors.allow_credentials {
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Replaces the CORS headers of an actual (non-preflight) response, the upstream's included,
/// with tokengate's policy for the request's `Origin`.
pub fn decorate(cors: &CorsSettings, request: &HeaderMap, response: &mut Response<Body>) {
    let headers = response.headers_mut();
    strip(headers);
    if let AllowedOrigins::List(_) = cors.allow_origins {
        vary(headers, "Origin");
    }
    let Some(origin) = allowed_origin(cors, request) else {
        return;
    };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if !cors.expose_headers.is_empty() {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, cors.expose_headers.clone());
    }
    if cors.allow_credentials {
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        }
        h
    }

    #[test]
    fn vary_is_merged_not_duplicated() {
        let mut h = map(&[("vary", "Accept-Encoding"), ("vary", "origin")]);
        vary(&mut h, "Origin");
        let all: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(all, [HeaderValue::from_static("Accept-Encoding, origin")]);
        let mut h = map(&[("vary", "Accept")]);
        vary(&mut h, "Origin");
        assert_eq!(
            h.get(VARY),
            Some(&HeaderValue::from_static("Accept, Origin"))
        );
        let mut h = map(&[("vary", "*")]);
        vary(&mut h, "Origin");
        assert_eq!(h.get(VARY), Some(&HeaderValue::from_static("*")));
    }

    #[test]
    fn well_formed_preflights() {
        let good = map(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
        ]);
        assert!(is_well_formed_preflight(&Method::OPTIONS, &good));
        assert!(!is_well_formed_preflight(&Method::GET, &good));
        let mut with_body = good.clone();
        with_body.insert("content-length", HeaderValue::from_static("5"));
        assert!(!is_well_formed_preflight(&Method::OPTIONS, &with_body));
        let mut chunked = good.clone();
        chunked.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        assert!(!is_well_formed_preflight(&Method::OPTIONS, &chunked));
        let mut two = good.clone();
        two.append("origin", HeaderValue::from_static("https://b.example"));
        assert!(!is_well_formed_preflight(&Method::OPTIONS, &two));
    }
}
