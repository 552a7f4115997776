//! The routes of Okta's Express quickstart, answered when no upstream is configured.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::authn::VerifiedToken;
use crate::body::{full, Body};

/// One of the quickstart's routes, answered (to `GET` and `HEAD`, for a verified token) when
/// there is no upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `GET /api/messages`
    Messages,
    /// `GET /secure`
    Secure,
}

impl Builtin {
    /// The route at canonical path `path`, if it is one: an exact, case-sensitive match, so
    /// `/secure/` is not `/secure`.
    pub fn for_path(path: &str) -> Option<Builtin> {
        match path {
            "/api/messages" => Some(Builtin::Messages),
            "/secure" => Some(Builtin::Secure),
            _ => None,
        }
    }

    /// The 200 JSON answer: the quickstart's fixed message list, or `token`'s JOSE header and
    /// claims (`{"header": …, "claims": …}`).
    pub fn respond(self, token: &VerifiedToken) -> Response<Body> {
        let body = match self {
            Builtin::Messages => json!([{"message": "Hello, word!"}]),
            // As the quickstart's `res.json(req.jwt)`: the JOSE header and the claims.
            Builtin::Secure => json!({"header": token.header(), "claims": token.claims()}),
        };
        json_response(StatusCode::OK, &body)
    }
}

/// A response with `status` and `body` as compact JSON (`Content-Type: application/json`).
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
