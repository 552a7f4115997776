//! CORS as Express's `app.use(cors(...))`: preflights are answered without a token, and
//! every response (401s included) carries the headers, so a browser app can read errors.

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
        headers.append(VARY, HeaderValue::from_static("Origin"));
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
            headers.append(
                VARY,
                HeaderValue::from_static("Access-Control-Request-Headers"),
            );
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

/// Adds the CORS headers of an actual (non-preflight) response.
pub fn decorate(cors: &CorsSettings, request: &HeaderMap, response: &mut Response<Body>) {
    let headers = response.headers_mut();
    if let AllowedOrigins::List(_) = cors.allow_origins {
        headers.append(VARY, HeaderValue::from_static("Origin"));
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
