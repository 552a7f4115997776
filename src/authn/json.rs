//! Strict JSON for JOSE headers and claims: duplicate members are rejected at every depth
//! (RFC 7515 §5.2 lets a parser reject them, and taking "the last one" is how one reader's
//! `aud` becomes another reader's). Depth is bounded by serde_json's recursion limit.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses a JSON object; anything else, or a duplicate member anywhere, is an error.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    parse_part(bytes, Part::Payload).ok()
}

/// Which part of a JWS is parsed, for the reason given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Payload,
}

/// Parses a JSON object, or says why not, in words that name `part` and the true reason:
/// a duplicate member, a number out of range (`1e309`), a lone surrogate or invalid escape,
/// nesting too deep, not JSON at all, or JSON that is not an object.
pub fn parse_part(bytes: &[u8], part: Part) -> Result<Map<String, Value>, &'static str> {
    use Part::{Header, Payload};
    let error = match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => return Ok(map),
        Ok(_) => {
            return Err(match part {
                Header => "the header is not a JSON object",
                Payload => "the payload is not a JSON object",
            })
        }
        Err(e) => e.to_string(),
    };
    // serde_json's messages are stable text; each maps to one reason.
    let reason = if error.starts_with(DUPLICATE) {
        0
    } else if error.starts_with("number out of range") || error.starts_with(NOT_FINITE) {
        1
    } else if error.contains("surrogate") || error.contains("unicode") || error.contains("escape") {
        2
    } else if error.starts_with("recursion limit exceeded") {
        3
    } else {
        4
    };
    Err(match (part, reason) {
        (Header, 0) => "the header has a duplicate member",
        (Header, 1) => "the header has a number out of range",
        (Header, 2) => "the header has a lone surrogate or an invalid escape",
        (Header, 3) => "the header nests too deeply",
        (Header, _) => "the header is not valid JSON",
        (Payload, 0) => "the payload has a duplicate member",
        (Payload, 1) => "the payload has a number out of range",
        (Payload, 2) => "the payload has a lone surrogate or an invalid escape",
        (Payload, 3) => "the payload nests too deeply",
        (Payload, _) => "the payload is not valid JSON",
    })
}

const DUPLICATE: &str = "duplicate member";
const NOT_FINITE: &str = "not a finite number";

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value without duplicate members")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(NOT_FINITE))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"aud":"a","aud":"b"}"#).is_none());
        assert!(parse_object(br#"{"x":{"k":1,"k":2}}"#).is_none());
        assert!(parse_object(br#"{"x":[{"k":1,"k":2}]}"#).is_none());
        assert!(parse_object(br#"{"aud":"a","sub":"b"}"#).is_some());
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        assert!(parse_object(b"[]").is_none());
        assert!(parse_object(b"\"x\"").is_none());
        assert!(parse_object(b"{} x").is_none());
        assert!(parse_object(b"{\"a\":\"\\ud800\"}").is_none());
        assert!(parse_object(b"").is_none());
    }

    #[test]
    fn each_failure_has_its_true_reason() {
        let why = |text: &str| parse_part(text.as_bytes(), Part::Payload).err();
        assert_eq!(
            why(r#"{"a":1,"a":2}"#),
            Some("the payload has a duplicate member")
        );
        assert_eq!(
            why(r#"{"exp":1e309}"#),
            Some("the payload has a number out of range")
        );
        assert_eq!(
            why(r#"{"sub":"\ud800"}"#),
            Some("the payload has a lone surrogate or an invalid escape")
        );
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(why(&deep), Some("the payload nests too deeply"));
        assert_eq!(why("[1]"), Some("the payload is not a JSON object"));
        assert_eq!(why("{"), Some("the payload is not valid JSON"));
        assert_eq!(
            parse_part(br#"{"alg":"RS256","alg":"RS256"}"#, Part::Header).err(),
            Some("the header has a duplicate member")
        );
    }

    #[test]
    fn depth_bombs_are_errors_not_crashes() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_object(deep.as_bytes()).is_none());
    }
}
