//! Bytes → `Authorization` header value (and query string) → `token::extract`.
//! Never panics; a token it returns is a non-empty b64token (RFC 6750 §2.1).
#![no_main]

use http::header::{HeaderValue, AUTHORIZATION};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use tokengate::token::{extract, ExtractError, Extracted};

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    // The bytes as a query string, with no header: only `access_token` may make it an error.
    if let Ok(query) = std::str::from_utf8(data) {
        match extract(&HeaderMap::new(), Some(query)) {
            Ok(Extracted::None) | Err(ExtractError::TokenInQuery) => {}
            other => panic!("a query alone gave {other:?}"),
        }
    }
    // The bytes as the one Authorization value (values http refuses never reach tokengate).
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    match extract(&headers, None) {
        Ok(Extracted::Bearer(token)) => {
            assert!(is_b64token(token), "extracted a non-b64token {token:?}");
            let text = value.to_str().expect("a Bearer value is visible ASCII");
            assert!(
                text.ends_with(token),
                "the token is not the end of the value"
            );
            let scheme = text.split(' ').next().unwrap_or_default();
            assert!(
                scheme.eq_ignore_ascii_case("bearer"),
                "a token from the scheme {scheme:?}"
            );
        }
        Ok(Extracted::None) | Err(ExtractError::MalformedHeader) => {}
        Err(e) => panic!("one header gave {e:?}"),
    }
    // Twice: always refused.
    headers.append(AUTHORIZATION, value);
    assert_eq!(extract(&headers, None), Err(ExtractError::MultipleHeaders));
});
