//! Bytes → `Authorization` header value and query string → `token::extract`.
//!
//! The bytes before the first `\n` are the header value, the bytes after it the query (without
//! a `\n`, the whole input is both). Never panics; a token it returns is a non-empty b64token
//! (RFC 6750 §2.1) ending a `Bearer` or `DPoP` (RFC 9449 §7.1) value, and its scheme is
//! the one the value names; a query alone never yields a token, only
//! `QueryParameter` (exactly when `query_has_token` says so); a Bearer header beside such a
//! parameter is `MultipleMethods`; two headers are always refused.
#![no_main]

use http::header::{HeaderValue, AUTHORIZATION};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use tokengate::token::{extract, query_has_token, ExtractError, Extracted, Scheme};

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A parameter literally named `access_token` (any letter case), which every spelling rule
/// must catch: a one-way check of `query_has_token`, independent of its decoding.
fn plainly_names_access_token(query: &str) -> bool {
    query.split(['&', ';']).any(|part| {
        part.split('=')
            .next()
            .unwrap_or_default()
            .eq_ignore_ascii_case("access_token")
    })
}

/// The token's text, if `extracted` is a bearer token.
fn bearer_text<'a>(extracted: &Extracted<'a>) -> Option<&'a str> {
    match extracted {
        Extracted::Token(token) => Some(token.as_str()),
        _ => None,
    }
}

/// What `extract` must say for a query beside a header whose verdict alone is `alone`.
fn with_query<'a>(
    alone: Result<Extracted<'a>, ExtractError>,
    has_token: bool,
) -> Result<Extracted<'a>, ExtractError> {
    match (alone, has_token) {
        (Ok(Extracted::Token(_)), true) => Err(ExtractError::MultipleMethods),
        (Ok(Extracted::None), true) => Ok(Extracted::QueryParameter),
        (alone, _) => alone,
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, query) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    let query = std::str::from_utf8(query).ok();

    // The query alone, with no header: never a token; `QueryParameter` exactly when the
    // parameter is there in some spelling.
    if let Some(query) = query {
        let has_token = query_has_token(query);
        if plainly_names_access_token(query) {
            assert!(
                has_token,
                "{query:?} names access_token but was not recognised"
            );
        }
        let expected = if has_token {
            Extracted::QueryParameter
        } else {
            Extracted::None
        };
        assert_eq!(
            extract(&HeaderMap::new(), Some(query)),
            Ok(expected),
            "a query alone: {query:?}"
        );
        // Beside a valid Bearer header: a second method exactly when the parameter is there.
        let mut bearer = HeaderMap::new();
        bearer.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def.ghi"),
        );
        let expected = if has_token {
            Err(ExtractError::MultipleMethods)
        } else {
            Ok(Some("abc.def.ghi"))
        };
        let got = extract(&bearer, Some(query)).map(|e| bearer_text(&e));
        assert_eq!(got, expected, "{query:?}");
    }

    // The bytes as the one Authorization value (values http refuses never reach tokengate).
    let Ok(value) = HeaderValue::from_bytes(head) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    let alone = extract(&headers, None);
    match &alone {
        Ok(Extracted::Token(token)) => {
            let sent_as = token.scheme();
            let token = token.as_str();
            assert!(is_b64token(token), "extracted a non-b64token {token:?}");
            let text = value.to_str().expect("a Bearer value is visible ASCII");
            assert!(
                text.ends_with(token),
                "the token is not the end of the value"
            );
            let scheme = text.split(' ').next().unwrap_or_default();
            let named = if scheme.eq_ignore_ascii_case("bearer") {
                Some(Scheme::Bearer)
            } else if scheme.eq_ignore_ascii_case("dpop") {
                Some(Scheme::Dpop)
            } else {
                None
            };
            assert_eq!(
                named,
                Some(sent_as),
                "a token from the scheme {scheme:?}"
            );
        }
        Ok(Extracted::None) | Err(ExtractError::MalformedHeader) => {}
        other => panic!("one header and no query gave {other:?}"),
    }
    // The same header with the query.
    if let Some(query) = query {
        assert_eq!(
            extract(&headers, Some(query)),
            with_query(extract(&headers, None), query_has_token(query)),
            "{value:?} with {query:?}"
        );
    }
    // Twice: always refused, whatever the query says.
    headers.append(AUTHORIZATION, value);
    assert_eq!(extract(&headers, None), Err(ExtractError::MultipleHeaders));
    if let Some(query) = query {
        assert_eq!(
            extract(&headers, Some(query)),
            Err(ExtractError::MultipleHeaders)
        );
    }
});
