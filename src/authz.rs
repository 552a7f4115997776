//! Stage 4: the route's rule applied to the principal → [`Permit`].
//!
//! Only a `Permit` reaches the upstream (`forward` takes one), so nothing gets through
//! without passing here. A missing scope is 403 `insufficient_scope` with the scopes named
//! (RFC 6750 §3.1); a route-level claim or issuer mismatch is 403 `access_denied`; a token
//! whose `aud` does not name the route's protected resource is 401 (RFC 8707 §2).

use std::sync::Arc;

use crate::authn::{Principal, VerifiedToken};
use crate::route::{AuthMode, Rule};

/// Why a route's rule refused the principal; `rejection` turns it into the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzError {
    /// The caller is anonymous and only a token could meet the rule (401, RFC 6750 §3.1:
    /// a challenge without an error code).
    TokenRequired,
    /// A required scope is missing (403 `insufficient_scope`, RFC 6750 §3.1): every scope
    /// the route names ([`Rule::scopes_needed`]), space-separated.
    InsufficientScope(String),
    /// The route belongs to a protected resource with `audiences`, and the token's `aud`
    /// names none of them: a token issued for another resource (401 `invalid_token`).
    WrongAudience,
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
    if let Some(resource) = rule.resource.as_ref().filter(|r| !r.audiences.is_empty()) {
        if !names_an_audience(&token, &resource.audiences) {
            return Err(AuthzError::WrongAudience);
        }
    }
    let held = |scope: &String| token.scopes().iter().any(|h| **h == **scope);
    let missing = !rule.scopes.iter().all(held)
        || (!rule.any_scopes.is_empty() && !rule.any_scopes.iter().any(held));
    if missing {
        return Err(AuthzError::InsufficientScope(
            rule.scopes_needed().join(" "),
        ));
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

/// The token's `aud` names one of `audiences`, byte for byte.
fn names_an_audience(token: &VerifiedToken, audiences: &[String]) -> bool {
    token
        .audiences()
        .iter()
        .any(|aud| audiences.iter().any(|a| **a == **aud))
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
    fn insufficient_scope_names_every_scope_the_route_needs() {
        let r = rule(&["read", "write"], &["a", "read"]);
        for held in [json!(["read"]), json!(["write", "a"]), json!(["a"])] {
            assert_eq!(
                authorize(&r, principal(json!({ "scp": held }))).err(),
                Some(AuthzError::InsufficientScope("read write a".into())),
                "{held}"
            );
        }
        assert!(authorize(&r, principal(json!({"scp": ["read", "write"]}))).is_ok());
    }

    #[test]
    fn a_resource_with_audiences_needs_a_token_for_it() {
        let mut r = rule(&["read"], &[]);
        r.resource = Some(crate::route::ResourceBinding {
            index: 0,
            audiences: vec!["https://mcp.example.com/mcp".into()],
            strip_authorization: true,
        });
        let mine = json!({"aud": ["api://other", "https://mcp.example.com/mcp"], "scp": ["read"]});
        assert!(authorize(&r, principal(mine)).is_ok());
        for aud in [
            json!("https://mcp.example.com/mcp/"),
            json!(["api://other"]),
            json!(null),
        ] {
            // The audience is checked before the scopes: a token for another resource is
            // invalid here (401), whatever scopes it has.
            assert_eq!(
                authorize(&r, principal(json!({"aud": aud, "scp": []}))).err(),
                Some(AuthzError::WrongAudience),
                "{aud}"
            );
        }
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
