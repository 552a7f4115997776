//! Stage 2: find the bearer token (RFC 6750 §2.1).
//!
//! `Authorization: Bearer <b64token>`, the scheme case-insensitive, exactly one token of the
//! b64token alphabet. Tokens in the query (§2.3) or form body (§2.2) are not accepted, because
//! URLs end up in logs: the `access_token` parameter is recognised however its name is spelled
//! (letter case, percent-encoding, `;` as a separator, the spellings PHP and Rails fold into
//! `access_token`). Beside a header token it is a second method (400, §2); alone it is an
//! unsupported method, which §3.1 treats as no authentication (401, no error code).

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// A bearer token as RFC 6750 §2.1 defines it: one non-empty `b64token`, borrowed from the
/// request's `Authorization` header. Only [`extract`] makes one, so whatever
/// `authn::verify` is given has passed the syntax check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BearerToken<'a>(&'a str);

impl<'a> BearerToken<'a> {
    /// The token's text (ASCII; never log it whole).
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// What the request carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Extracted<'a> {
    /// No Authorization header (or one with another scheme, such as Basic).
    None,
    /// `Authorization: Bearer <b64token>` (RFC 6750 §2.1), with no `access_token` parameter.
    Bearer(BearerToken<'a>),
    /// Only an `access_token` query parameter: a method tokengate does not support (RFC 6750
    /// §3.1: treated as no authentication, never as a token).
    QueryParameter,
}

/// Why the request is malformed (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Two or more `Authorization` fields: which one an upstream would read is anyone's guess.
    #[error("more than one Authorization header")]
    MultipleHeaders,
    /// Not visible ASCII, no valid scheme (an RFC 9110 §5.6.2 token), or a `Bearer` scheme
    /// not followed by exactly one `b64token` (RFC 6750 §2.1).
    #[error("the Authorization header is malformed")]
    MalformedHeader,
    /// RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token".
    #[error("more than one method carries a token: the Authorization header and the access_token query parameter")]
    MultipleMethods,
}

/// Extracts the bearer token from the request head.
///
/// Errors: two `Authorization` headers, a malformed one, or a bearer header beside an
/// `access_token` parameter (all 400 `invalid_request`).
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Extracted<'a>, ExtractError> {
    let header = extract_header(headers)?;
    match (header, query.is_some_and(query_has_token)) {
        (Extracted::Bearer(_), true) => Err(ExtractError::MultipleMethods),
        (_, true) => Ok(Extracted::QueryParameter),
        (header, false) => Ok(header),
    }
}

fn extract_header(headers: &HeaderMap) -> Result<Extracted<'_>, ExtractError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Extracted::None);
    };
    if values.next().is_some() {
        return Err(ExtractError::MultipleHeaders);
    }
    let value = value.to_str().map_err(|_| ExtractError::MalformedHeader)?;
    let (scheme, rest) = match value.split_once(' ') {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    if scheme.is_empty() || !scheme.bytes().all(is_tchar) {
        return Err(ExtractError::MalformedHeader);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme: this request has no bearer token. `Basic xyz Bearer <t>` lands here.
        return Ok(Extracted::None);
    }
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) {
        Ok(Extracted::Bearer(BearerToken(token)))
    } else {
        Err(ExtractError::MalformedHeader)
    }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    // Tokens are long and this runs on every request: checking 32 bytes at a time without
    // branching lets the compiler vectorise the range comparisons.
    !body.is_empty()
        && body
            .as_bytes()
            .chunks(32)
            .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & is_b64token_byte(b)))
}

fn is_b64token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// RFC 9110 §5.6.2 token characters, for the scheme.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether any query parameter is `access_token` as some upstream framework would read it.
/// `&` and `;` both separate parameters (older Java and Python servers split on `;`).
pub fn query_has_token(query: &str) -> bool {
    query
        .split(';')
        .flat_map(|part| url::form_urlencoded::parse(part.as_bytes()))
        .any(|(name, _)| names_access_token(&name))
}

/// `name` (already percent-decoded, `+` read as a space) read as `access_token`: any letter
/// case, surrounding white space ignored, PHP's folding of ` ` `.` `[` into `_`, an array
/// suffix such as `access_token[]` or `access_token[x]`, and anything after a NUL byte (PHP
/// decodes the name and then reads it as a C string: `access_token%00x` is `access_token`).
fn names_access_token(name: &str) -> bool {
    const TARGET: &[u8] = b"access_token";
    let name = name
        .split('\0')
        .next()
        .unwrap_or_default()
        .trim()
        .as_bytes();
    if name.len() < TARGET.len() {
        return false;
    }
    let (head, rest) = name.split_at(TARGET.len());
    let folded = head.iter().zip(TARGET).all(|(&a, &b)| {
        let a = match a {
            b' ' | b'.' | b'[' => b'_',
            other => other.to_ascii_lowercase(),
        };
        a == b
    });
    folded && (rest.is_empty() || rest.first() == Some(&b'['))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(AUTHORIZATION, v);
            }
        }
        h
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER abc.def.ghi",
            "Bearer   abc.def.ghi",
        ] {
            assert_eq!(
                extract(&headers(&[v]), None),
                Ok(Extracted::Bearer(BearerToken("abc.def.ghi"))),
                "{v}"
            );
        }
    }

    #[test]
    fn missing_and_other_schemes_are_no_token() {
        assert_eq!(extract(&headers(&[]), None), Ok(Extracted::None));
        assert_eq!(
            extract(&headers(&["Basic dXNlcjpwYXNz"]), None),
            Ok(Extracted::None)
        );
        assert_eq!(
            extract(&headers(&["Basic xyz Bearer abc.def.ghi"]), None),
            Ok(Extracted::None)
        );
    }

    #[test]
    fn malformed_headers() {
        for v in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer a\"b",
            "",
            "Bearer ==",
            "Bearer a=b",
            " Bearer abc",
        ] {
            assert_eq!(
                extract(&headers(&[v]), None),
                Err(ExtractError::MalformedHeader),
                "{v:?}"
            );
        }
        assert_eq!(
            extract(&headers(&["Bearer a+/b=="]), None),
            Ok(Extracted::Bearer(BearerToken("a+/b==")))
        );
    }

    #[test]
    fn two_headers_or_two_methods_are_invalid_requests() {
        assert_eq!(
            extract(&headers(&["Bearer a", "Bearer b"]), None),
            Err(ExtractError::MultipleHeaders)
        );
        assert_eq!(
            extract(&headers(&["Bearer a"]), Some("x=1&access_token=a")),
            Err(ExtractError::MultipleMethods)
        );
        assert_eq!(
            extract(&headers(&["Bearer a"]), Some("token=a")),
            Ok(Extracted::Bearer(BearerToken("a")))
        );
    }

    #[test]
    fn a_query_token_alone_is_an_unsupported_method() {
        assert_eq!(
            extract(&headers(&[]), Some("access_token=a")),
            Ok(Extracted::QueryParameter)
        );
        // Another scheme is no bearer token: the query parameter is the only "method".
        assert_eq!(
            extract(&headers(&["Basic dXNlcjpwYXNz"]), Some("access_token=a")),
            Ok(Extracted::QueryParameter)
        );
    }

    #[test]
    fn the_parameter_is_found_in_every_spelling() {
        for query in [
            "access_token=a",
            "ACCESS_TOKEN=a",
            "Access_Token=a",
            "access%5Ftoken=a",
            "%61ccess_token=a",
            "access%5ftoken=a",
            "x=1;access_token=a",
            "x=1&%20access_token%20=a",
            "access.token=a",
            "access+token=a",
            "access[token=a",
            "access_token[]=a",
            "access_token[0]=a",
            "access_token",
            "access_token=",
            "access_token%00=a",
            "access_token%00junk=a",
        ] {
            assert!(query_has_token(query), "{query}");
        }
        for query in [
            "access_tokens=a",
            "xaccess_token=a",
            "access-token=a",
            "token=a",
            "",
        ] {
            assert!(!query_has_token(query), "{query}");
        }
    }

    #[test]
    fn one_bad_byte_anywhere_in_a_long_token_is_found() {
        // The check runs 32 bytes at a time: put the bad byte in every position of tokens
        // that end inside, at and past a chunk boundary.
        for len in [1usize, 31, 32, 33, 64, 65, 100] {
            let good = "aZ9-._~+/".repeat(12)[..len].to_owned();
            assert!(is_b64token(&good), "{good}");
            for at in 0..len {
                for bad in [b' ', b'"', b',', b'=', 0x7f, b'\t'] {
                    let mut token = good.clone().into_bytes();
                    token[at] = bad;
                    let token = String::from_utf8(token).unwrap_or_default();
                    let trailing_padding = bad == b'=' && token[at..].bytes().all(|b| b == b'=');
                    assert_eq!(is_b64token(&token), trailing_padding && at > 0, "{token:?}");
                }
            }
        }
        assert!(is_b64token("abc=="));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("ab=c"));
        assert!(!is_b64token("aé"));
    }
}
