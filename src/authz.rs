//! Stage 4: the route's rule applied to the principal → [`Permit`].
//!
//! Only a `Permit` reaches the upstream (`forward` takes one), so nothing gets through
//! without passing here. A missing scope is 403 `insufficient_scope` with the scopes named
//! (RFC 6750 §3.1); a route-level claim or issuer mismatch is 403 `access_denied`.

use std::sync::Arc;

use crate::authn::{Principal, VerifiedToken};
use crate::route::{AuthMode, Rule};

/// Why a route's rule refused the principal; `rejection` turns it into the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzError {
    /// The caller is anonymous and only a token could meet the rule (401, RFC 6750 §3.1:
    /// a challenge without an error code).
    TokenRequired,
    /// A required scope is missing (403 `insufficient_scope`, RFC 6750 §3.1): the scopes
    /// the route needs, space-separated.
    InsufficientScope(String),
    /// An issuer or claim condition of the route fails (403 `access_denied`): why.
    AccessDenied(String),
}

/// Proof that a request passed its route's rule. Only [`authorize`] makes one, and
/// `forward` and `mutate` take one, so nothing reaches the upstream without passing here.
#[derive(Debug, Clone)]
pub struct Permit {
    principal: Principal,
}

impl Permit {
    /// Who was let through.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The verified token, unless the caller is anonymous.
    pub fn token(&self) -> Option<&Arc<VerifiedToken>> {
        match &self.principal {
            Principal::Authenticated(token) => Some(token),
            Principal::Anonymous => None,
        }
    }
}

/// Applies `rule` to `principal`: a [`Permit`] when it holds, else why not.
pub fn authorize(rule: &Rule, principal: Principal) -> Result<Permit, AuthzError> {
    let token = match (&principal, rule.auth) {
        (Principal::Authenticated(token), _) => token.clone(),
        (Principal::Anonymous, AuthMode::None) => return Ok(Permit { principal }),
        (Principal::Anonymous, AuthMode::Optional) if !demands_anything(rule) => {
            return Ok(Permit { principal })
        }
        // Conditions that only a token could meet: ask for one.
        (Principal::Anonymous, _) => return Err(AuthzError::TokenRequired),
    };
    if let Some(issuers) = &rule.issuers {
        if !issuers.contains(&token.issuer) {
            return Err(AuthzError::AccessDenied(
                "the token's issuer is not accepted on this route".into(),
            ));
        }
    }
    let held = |scope: &String| token.scopes().iter().any(|h| **h == **scope);
    if !rule.scopes.iter().all(held) {
        return Err(AuthzError::InsufficientScope(rule.scopes.join(" ")));
    }
    if !rule.any_scopes.is_empty() && !rule.any_scopes.iter().any(held) {
        return Err(AuthzError::InsufficientScope(rule.any_scopes.join(" ")));
    }
    // Parsed only for routes that look at claims.
    let claims = if rule.claims.is_empty() {
        Default::default()
    } else {
        token.claims()
    };
    for claim in &rule.claims {
        if !claim.holds(&claims) {
            return Err(AuthzError::AccessDenied(format!(
                "the claim `{}` does not match",
                claim.name
            )));
        }
    }
    Ok(Permit { principal })
}

fn demands_anything(rule: &Rule) -> bool {
    !rule.scopes.is_empty()
        || !rule.any_scopes.is_empty()
        || !rule.claims.is_empty()
        || rule.issuers.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{ClaimRule, Predicate};
    use serde_json::{json, Map, Value};

    fn principal(claims: Value) -> Principal {
        let claims: Map<String, Value> = claims.as_object().cloned().unwrap_or_default();
        Principal::Authenticated(Arc::new(VerifiedToken::new(
            "https://idp".into(),
            Map::new(),
            claims,
        )))
    }

    fn rule(scopes: &[&str], any: &[&str]) -> Rule {
        Rule {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            any_scopes: any.iter().map(|s| s.to_string()).collect(),
            ..Rule::required()
        }
    }

    #[test]
    fn all_scopes_are_required() {
        let r = rule(&["read", "write"], &[]);
        assert!(authorize(&r, principal(json!({"scp": ["write", "read"]}))).is_ok());
        assert_eq!(
            authorize(&r, principal(json!({"scope": "read"}))).err(),
            Some(AuthzError::InsufficientScope("read write".into()))
        );
        assert!(authorize(&r, principal(json!({"scope": "read write"}))).is_ok());
    }

    #[test]
    fn any_scope_is_enough() {
        let r = rule(&[], &["a", "b"]);
        assert!(authorize(&r, principal(json!({"scp": ["b"]}))).is_ok());
        assert_eq!(
            authorize(&r, principal(json!({"scp": ["c"]}))).err(),
            Some(AuthzError::InsufficientScope("a b".into()))
        );
    }

    #[test]
    fn claims_and_issuers_are_access_denied() {
        let mut r = Rule::required();
        r.claims = vec![ClaimRule::new(
            "tier",
            Predicate::AnyOf(vec![json!("gold")]),
        )];
        assert!(
            matches!(authorize(&r, principal(json!({"tier": "tin"}))), Err(AuthzError::AccessDenied(m)) if m.contains("tier"))
        );
        let mut r = Rule::required();
        r.issuers = Some(vec!["https://other".into()]);
        assert!(matches!(
            authorize(&r, principal(json!({}))),
            Err(AuthzError::AccessDenied(_))
        ));
    }

    #[test]
    fn anonymous_callers() {
        let mut r = Rule::required();
        r.auth = AuthMode::None;
        assert!(authorize(&r, Principal::Anonymous).is_ok());
        r.auth = AuthMode::Optional;
        assert!(authorize(&r, Principal::Anonymous).is_ok());
        let mut scoped = rule(&["read"], &[]);
        scoped.auth = AuthMode::Optional;
        assert_eq!(
            authorize(&scoped, Principal::Anonymous).err(),
            Some(AuthzError::TokenRequired)
        );
        assert_eq!(
            authorize(&Rule::required(), Principal::Anonymous).err(),
            Some(AuthzError::TokenRequired)
        );
    }
}
