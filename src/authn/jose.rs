//! Compact JWS (RFC 7515 §7.1): three strict base64url segments, a JOSE header we understand,
//! and the signature check against one key.

use crate::algorithm::Algorithm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::json::{parse_part, Part};
use super::TokenError;
use crate::jwk::VerifyingKey;

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    /// The third segment, still base64url (its alphabet and length already checked).
    pub signature: &'a str,
    /// The header's `alg`, one tokengate implements (RFC 7515 §4.1.1).
    pub alg: Algorithm,
    /// The header's `kid`, if present (RFC 7515 §4.1.4).
    pub kid: Option<String>,
    /// The header's `typ`, if present (RFC 7515 §4.1.9).
    pub typ: Option<String>,
    /// The whole JOSE header, parsed.
    pub header: Map<String, Value>,
    /// The JOSE header's JSON as it was signed (the decoded first segment).
    pub header_json: Vec<u8>,
    /// The decoded payload (the claims' JSON, not yet parsed).
    pub payload: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Splits and decodes a compact JWS (RFC 7515 §7.1): exactly three segments, strict
    /// base64url without padding (§2), a strict-JSON object header with a supported `alg`
    /// and string `kid`/`typ` if present, and no `crit` (§4.1.11). `jku`, `x5u`, `jwk` and
    /// `x5c` are ignored, so nothing in the token chooses its key. The payload is only
    /// decoded here.
    ///
    /// Errors: [`TokenError::Malformed`], [`TokenError::UnsupportedAlgorithm`] or
    /// [`TokenError::CriticalHeader`].
    pub fn parse(token: &'a str) -> Result<Jws<'a>, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("a JWS has three segments"));
        };
        if h.is_empty() || s.is_empty() {
            return Err(TokenError::Malformed(
                "an empty header or signature segment",
            ));
        }
        let header_bytes = decode_segment(h)?;
        let payload = decode_segment(p)?;
        // Checked for alphabet and length now; decoded by the crypto call.
        decode_segment(s)?;
        let header = parse_part(&header_bytes, Part::Header).map_err(TokenError::Malformed)?;

        // RFC 7515 §4.1.11: we implement no extension, so any `crit` means we must refuse.
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        let alg = match header.get("alg") {
            Some(Value::String(name)) => {
                Algorithm::from_name(name).ok_or(TokenError::UnsupportedAlgorithm)?
            }
            _ => return Err(TokenError::Malformed("the header has no alg string")),
        };
        let kid = optional_string(&header, "kid")?;
        let typ = optional_string(&header, "typ")?;
        // `jku`, `x5u`, `jwk` and `x5c` are ignored: nothing in a token chooses its own key.
        Ok(Jws {
            signing_input: &token[..h.len() + 1 + p.len()],
            signature: s,
            alg,
            kid,
            typ,
            header,
            header_json: header_bytes,
            payload,
        })
    }

    /// Checks the signature with one key, which must admit the token's algorithm.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), TokenError> {
        if !key.algorithms.contains(&self.alg) || !key.admits(self.alg) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        // The segment's alphabet and length were checked by `parse`.
        let signature = URL_SAFE_NO_PAD
            .decode(self.signature)
            .map_err(|_| TokenError::BadSignature)?;
        if key.verify(self.alg, self.signing_input.as_bytes(), &signature) {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

fn optional_string(
    header: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::Malformed(match name {
            "kid" => "the kid is not a string",
            _ => "the typ is not a string",
        })),
    }
}

/// base64url without padding, canonical trailing bits, nothing else (RFC 7515 §2).
fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed("a segment is not base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    #[test]
    fn segments_must_be_three_and_strict() {
        let good = token(r#"{"alg":"RS256"}"#, "{}");
        assert!(Jws::parse(&good).is_ok());
        assert!(Jws::parse(&format!("{good}.x")).is_err());
        assert!(Jws::parse(&good[..good.rfind('.').unwrap_or(0)]).is_err());
        assert!(Jws::parse(&format!("{good}=")).is_err());
        let std_alphabet = good.replace("c2ln", "c2+/");
        assert!(Jws::parse(&std_alphabet).is_err());
        let empty_sig = format!("{}.", &good[..good.rfind('.').unwrap_or(0)]);
        assert!(Jws::parse(&empty_sig).is_err());
    }

    #[test]
    fn header_rules() {
        let err = |h: &str| Jws::parse(&token(h, "{}")).err();
        assert_eq!(
            err(r#"{"alg":"none"}"#),
            Some(TokenError::UnsupportedAlgorithm)
        );
        // HS256 is a name tokengate knows; whether an issuer allows it is authn's to say.
        assert_eq!(err(r#"{"alg":"HS256"}"#), None);
        assert_eq!(
            err(r#"{"alg":"HS1"}"#),
            Some(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(
            err(r#"{"alg":"rs256"}"#),
            Some(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(
            err(r#"{"alg":"RS256","crit":["exp"]}"#),
            Some(TokenError::CriticalHeader)
        );
        assert!(matches!(
            err(r#"{"alg":"RS256","kid":7}"#),
            Some(TokenError::Malformed(_))
        ));
        assert!(matches!(
            err(r#"{"alg":["RS256"]}"#),
            Some(TokenError::Malformed(_))
        ));
        assert!(matches!(
            err(r#"{"alg":"RS256","alg":"RS256"}"#),
            Some(TokenError::Malformed(_))
        ));
        assert_eq!(err(r#"{"alg":"RS256","jku":"https://evil"}"#), None);
    }
}
