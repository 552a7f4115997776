//! The claim checks of an authentic token (RFC 7519 §4.1, RFC 9068 §2, the issuer's
//! assertions), as one ordered list: [`check_claims`] stops at the first failure (every cache
//! miss), `tokengate inspect` runs and prints them all.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::TokenError;
use crate::claims::ClaimRule;
use crate::config::IssuerSettings;

/// One check of an authentic token's claims.
#[derive(Debug, Clone, Copy)]
pub enum ClaimCheck<'a> {
    /// `exp` present, a number, and not past (with leeway) (RFC 7519 §4.1.4).
    Expiry,
    /// `nbf`, if present, reached (with leeway) (RFC 7519 §4.1.5).
    NotBefore,
    /// `iat`, if present, not in the future (with leeway) (RFC 7519 §4.1.6).
    IssuedAt,
    /// `max_lifetime`: `exp` not too far beyond now and beyond `iat`.
    Lifetime,
    /// `aud` names one of the issuer's audiences (RFC 7519 §4.1.3).
    Audience,
    /// The claims tokengate reads have the types their specifications give.
    ClaimTypes,
    /// RFC 9068 §2: `typ` `at+jwt` and the required claims (only where the issuer asks).
    Rfc9068Profile,
    /// One of the issuer's claim assertions (`claims:`).
    Assertion(&'a ClaimRule),
}

/// The checks every issuer runs, in order, before its optional ones.
const ALWAYS: [ClaimCheck<'static>; 6] = [
    ClaimCheck::Expiry,
    ClaimCheck::NotBefore,
    ClaimCheck::IssuedAt,
    ClaimCheck::Lifetime,
    ClaimCheck::Audience,
    ClaimCheck::ClaimTypes,
];

impl<'a> ClaimCheck<'a> {
    /// Every check `issuer` asks for, in the order they are applied.
    pub fn ordered(issuer: &'a IssuerSettings) -> impl Iterator<Item = ClaimCheck<'a>> {
        ALWAYS
            .into_iter()
            .chain(issuer.require_rfc9068.then_some(ClaimCheck::Rfc9068Profile))
            .chain(issuer.claims.iter().map(ClaimCheck::Assertion))
    }

    /// The check's name as `tokengate inspect` prints it (`assertion <claim>` for an
    /// assertion).
    pub fn name(&self) -> Cow<'a, str> {
        Cow::Borrowed(match self {
            ClaimCheck::Expiry => "expiry",
            ClaimCheck::NotBefore => "not before",
            ClaimCheck::IssuedAt => "issued at",
            ClaimCheck::Lifetime => "lifetime",
            ClaimCheck::Audience => "audience",
            ClaimCheck::ClaimTypes => "claim types",
            ClaimCheck::Rfc9068Profile => "rfc9068 profile",
            ClaimCheck::Assertion(rule) => return Cow::Owned(format!("assertion {}", rule.name)),
        })
    }

    /// Runs the check on `claims` (with the JOSE header's `typ`) at `now` (seconds since the
    /// epoch). Errors: the [`TokenError`] that makes the token invalid.
    pub fn run(
        &self,
        claims: &Map<String, Value>,
        typ: Option<&str>,
        issuer: &IssuerSettings,
        now: f64,
    ) -> Result<(), TokenError> {
        let leeway = issuer.leeway.as_secs_f64();
        match self {
            ClaimCheck::Expiry => expiry(claims, now, leeway),
            ClaimCheck::NotBefore => not_before(claims, now, leeway),
            ClaimCheck::IssuedAt => issued_at(claims, now, leeway),
            ClaimCheck::Lifetime => lifetime(claims, now, leeway, issuer.max_lifetime),
            ClaimCheck::Audience => audience(claims, &issuer.audiences),
            ClaimCheck::ClaimTypes => claim_types(claims),
            ClaimCheck::Rfc9068Profile => rfc9068(claims, typ),
            ClaimCheck::Assertion(rule) if rule.holds(claims) => Ok(()),
            ClaimCheck::Assertion(rule) => Err(TokenError::Claim(rule.name.clone())),
        }
    }
}

/// Time, audience, type and assertion checks on an authentic token's claims, in
/// [`ClaimCheck::ordered`] order; the first failure decides.
pub fn check_claims(
    claims: &Map<String, Value>,
    typ: Option<&str>,
    issuer: &IssuerSettings,
    now: f64,
) -> Result<(), TokenError> {
    ClaimCheck::ordered(issuer).try_for_each(|check| check.run(claims, typ, issuer, now))
}

fn expiry(claims: &Map<String, Value>, now: f64, leeway: f64) -> Result<(), TokenError> {
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExp)?;
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    Ok(())
}

fn not_before(claims: &Map<String, Value>, now: f64, leeway: f64) -> Result<(), TokenError> {
    match numeric_date(claims, "nbf")? {
        Some(nbf) if now + leeway < nbf => Err(TokenError::NotYetValid),
        _ => Ok(()),
    }
}

fn issued_at(claims: &Map<String, Value>, now: f64, leeway: f64) -> Result<(), TokenError> {
    match numeric_date(claims, "iat")? {
        Some(iat) if iat > now + leeway => Err(TokenError::IssuedInFuture),
        _ => Ok(()),
    }
}

/// `max_lifetime`: `exp` at most that far beyond now (plus leeway) and beyond `iat`, so a
/// token with `exp: 2e206` is not valid for ever. Runs after `expiry`, which proved `exp` a
/// number.
fn lifetime(
    claims: &Map<String, Value>,
    now: f64,
    leeway: f64,
    cap: Option<std::time::Duration>,
) -> Result<(), TokenError> {
    let Some(cap) = cap.map(|c| c.as_secs_f64()) else {
        return Ok(());
    };
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExp)?;
    if exp - now > cap + leeway {
        return Err(TokenError::LifetimeTooLong);
    }
    if let Some(iat) = numeric_date(claims, "iat")? {
        if exp - iat > cap {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    Ok(())
}

/// `aud` (a string or an array of strings) contains one of the configured audiences.
fn audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), TokenError> {
    let ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted.iter().any(|a| a == aud),
        Some(Value::Array(items)) => {
            if items.iter().any(|i| !i.is_string()) {
                return Err(TokenError::ClaimType("aud"));
            }
            items
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| accepted.iter().any(|a| a == aud))
        }
        Some(_) => return Err(TokenError::ClaimType("aud")),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TokenError::Audience)
    }
}

/// The claims tokengate reads (or forwards) have the types their specifications give.
fn claim_types(claims: &Map<String, Value>) -> Result<(), TokenError> {
    for name in ["sub", "jti", "client_id", "cid", "azp", "scope"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(TokenError::ClaimType(name));
        }
    }
    match claims.get("scp") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(TokenError::ClaimType("scp")),
    }
}

/// RFC 9068 §2.1-2.2: `typ` is `at+jwt` and the required claims are present.
fn rfc9068(claims: &Map<String, Value>, typ: Option<&str>) -> Result<(), TokenError> {
    let typ_ok = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::NotAnAccessToken);
    }
    for name in ["sub", "client_id", "iat", "jti"] {
        if !claims.contains_key(name) {
            return Err(TokenError::MissingClaim(name));
        }
    }
    Ok(())
}

/// A NumericDate claim: absent, or a number. A string, array or anything else is invalid.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(TokenError::ClaimType(name)),
        Some(_) => Err(TokenError::ClaimType(name)),
    }
}
