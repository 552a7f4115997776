//! Stage 2: find the access token (RFC 6750 §2.1, RFC 9449 §7.1) and its DPoP proof.
//!
//! `Authorization: Bearer <b64token>` or `Authorization: DPoP <token68>`, the scheme
//! case-insensitive, exactly one token of the b64token alphabet (the two grammars are the
//! same characters). Tokens in the query (§2.3) or form body (§2.2) are not accepted, because
//! URLs end up in logs: the `access_token` parameter is recognised however its name is spelled
//! (letter case, percent-encoding, `;` as a separator, the spellings PHP and Rails fold into
//! `access_token`). Beside a header token it is a second method (400, §2); alone it is an
//! unsupported method, which §3.1 treats as no authentication (401, no error code).

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

/// The `DPoP` request header (RFC 9449 §4.1), which carries the proof.
pub static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The `Authorization` scheme a token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer` (RFC 6750 §2.1): whoever holds the token may use it.
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): the token is bound to a key, and a proof comes with it.
    Dpop,
}

impl Scheme {
    /// The scheme's name as challenges write it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        }
    }
}

/// An access token as sent: one non-empty `b64token` (RFC 6750 §2.1; RFC 9449 §7.1's
/// `token68` is the same alphabet), borrowed from the request's `Authorization` header, and
/// its scheme. Only [`extract`] makes one, so whatever `authn::verify` is given has passed
/// the syntax check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessToken<'a> {
    text: &'a str,
    scheme: Scheme,
}

impl<'a> AccessToken<'a> {
    /// The token's text (ASCII; never log it whole).
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The scheme it came with.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

/// The request's `DPoP` header fields (RFC 9449 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofHeader<'a> {
    None,
    /// Exactly one, as visible ASCII.
    One(&'a str),
    /// More than one field, or one that is not visible ASCII (§4.3 check 1 fails).
    Unusable,
}

/// The `DPoP` header of `headers`.
pub fn proof_header(headers: &HeaderMap) -> ProofHeader<'_> {
    let mut values = headers.get_all(&DPOP).iter();
    match (values.next(), values.next()) {
        (None, _) => ProofHeader::None,
        (Some(v), None) => match v.to_str() {
            Ok(text) => ProofHeader::One(text),
            Err(_) => ProofHeader::Unusable,
        },
        (Some(_), Some(_)) => ProofHeader::Unusable,
    }
}

/// What the request carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Extracted<'a> {
    /// No Authorization header (or one with another scheme, such as Basic).
    None,
    /// `Authorization: Bearer <b64token>` (RFC 6750 §2.1) or `Authorization: DPoP <token68>`
    /// (RFC 9449 §7.1), with no `access_token` parameter.
    Token(AccessToken<'a>),
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
    /// A `DPoP` proof beside `Authorization: Bearer` (RFC 9449 §7.2): which of the two the
    /// client meant cannot be known, so neither is guessed.
    #[error("a DPoP proof came with Authorization: Bearer; a DPoP-bound token is sent as Authorization: DPoP")]
    ProofWithBearer,
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
        (Extracted::Token(_), true) => Err(ExtractError::MultipleMethods),
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
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        // Another scheme: this request has no access token. `Basic xyz Bearer <t>` lands here.
        return Ok(Extracted::None);
    };
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) {
        Ok(Extracted::Token(AccessToken {
            text: token,
            scheme,
        }))
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

    fn bearer(text: &str) -> AccessToken<'_> {
        AccessToken {
            text,
            scheme: Scheme::Bearer,
        }
    }

    #[test]
    fn dpop_is_a_scheme_of_its_own() {
        for v in ["DPoP abc.def.ghi", "dpop abc.def.ghi", "DPOP  abc.def.ghi"] {
            assert_eq!(
                extract(&headers(&[v]), None),
                Ok(Extracted::Token(AccessToken {
                    text: "abc.def.ghi",
                    scheme: Scheme::Dpop
                })),
                "{v}"
            );
        }
        assert_eq!(
            extract(&headers(&["DPoP a b"]), None),
            Err(ExtractError::MalformedHeader)
        );
        let mut h = HeaderMap::new();
        assert_eq!(proof_header(&h), ProofHeader::None);
        h.append(&DPOP, HeaderValue::from_static("a.b.c"));
        assert_eq!(proof_header(&h), ProofHeader::One("a.b.c"));
        h.append(&DPOP, HeaderValue::from_static("d.e.f"));
        assert_eq!(proof_header(&h), ProofHeader::Unusable);
        let mut h = HeaderMap::new();
        h.insert(
            &DPOP,
            HeaderValue::from_bytes(&[b'a', 0xff]).unwrap_or(HeaderValue::from_static("x")),
        );
        assert_eq!(proof_header(&h), ProofHeader::Unusable);
    }

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
                Ok(Extracted::Token(bearer("abc.def.ghi"))),
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
            Ok(Extracted::Token(bearer("a+/b==")))
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
            Ok(Extracted::Token(bearer("a")))
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
