//! The response body type shared by every stage.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any body tokengate sends: built in full here, streamed from an upstream later.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response body.
pub fn json(value: &serde_json::Value) -> Body {
    full(value.to_string())
}
