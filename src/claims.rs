//! Claim lookup and the predicates of `claims:` assertions.
//!
//! Values are compared whole: `equals` is JSON equality, `includes` is a set test on an array
//! or on the words of a space-separated string (never a substring test: `"unread"` does not
//! include `"read"`), `includes_any` is the same set test needing only one of the listed
//! values (a non-empty intersection: "the token's `groups` has any of these"), `any_of`
//! accepts one of several whole values.

use serde_json::{Map, Value};

/// One claim assertion (a `claims:` entry of an issuer or a route): a claim, found by its
/// dotted name, and what its value must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    /// The claim's name as configured, e.g. `realm_access.roles`.
    pub name: String,
    /// `name` split at each `.`, for [`lookup`].
    pub path: Vec<String>,
    /// What the claim's value must satisfy.
    pub predicate: Predicate,
}

/// How a claim's value is tested (`equals`, `includes`, `includes_any`, `any_of`); values
/// are compared whole, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The claim equals this value (JSON equality). `claim: value` means this.
    Equals(Value),
    /// Every listed value must be present: an element of the claim's array, or a word of its
    /// space-separated string.
    Includes(Vec<Value>),
    /// At least one listed value must be present (a non-empty set intersection).
    IncludesAny(Vec<Value>),
    /// The claim must equal one of these values.
    AnyOf(Vec<Value>),
}

impl ClaimRule {
    /// A rule on the claim `name` (a dotted path into nested objects, e.g.
    /// `realm_access.roles`).
    pub fn new(name: &str, predicate: Predicate) -> ClaimRule {
        ClaimRule {
            name: name.to_owned(),
            path: name.split('.').map(str::to_owned).collect(),
            predicate,
        }
    }

    /// True when the claims satisfy this rule. A missing claim never does.
    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(actual) = lookup(claims, &self.path) else {
            return false;
        };
        match &self.predicate {
            Predicate::Equals(expected) => actual == expected,
            Predicate::AnyOf(options) => options.iter().any(|o| o == actual),
            Predicate::Includes(required) => required.iter().all(|r| contains_member(actual, r)),
            Predicate::IncludesAny(wanted) => wanted.iter().any(|w| contains_member(actual, w)),
        }
    }
}

/// Follows a dotted path through nested objects. A claim whose own name contains a dot
/// (`"https://example.com/roles"`) is found too: the whole name is tried first.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    if path.len() > 1 {
        if let Some(v) = claims.get(&path.join(".")) {
            return Some(v);
        }
    }
    let (first, rest) = path.split_first()?;
    let mut current = claims.get(first)?;
    for segment in rest {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

/// Set membership: an element of an array, or a word of a space-separated string.
fn contains_member(actual: &Value, wanted: &Value) -> bool {
    match actual {
        Value::Array(items) => items.iter().any(|i| i == wanted),
        Value::String(s) => match wanted {
            Value::String(w) => s.split(' ').any(|word| word == w),
            _ => false,
        },
        _ => false,
    }
}

/// Scopes per RFC 8693/9068 practice: `scp` as an array of strings (Okta, Entra), or `scope`
/// as a space-separated string (RFC 8693 §4.2). A claim of any other shape yields no scopes.
pub fn scopes(claims: &Map<String, Value>) -> Vec<&str> {
    if let Some(scp) = claims.get("scp") {
        return match scp {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => s.split(' ').filter(|w| !w.is_empty()).collect(),
            _ => Vec::new(),
        };
    }
    match claims.get("scope") {
        Some(Value::String(s)) => s.split(' ').filter(|w| !w.is_empty()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn includes_is_a_set_test_never_a_substring_test() {
        let rule = ClaimRule::new("scope", Predicate::Includes(vec![json!("read")]));
        assert!(rule.holds(&claims(json!({"scope": "write read"}))));
        assert!(!rule.holds(&claims(json!({"scope": "unread"}))));
        assert!(!rule.holds(&claims(json!({"scope": "readwrite"}))));
        let groups = ClaimRule::new("groups", Predicate::Includes(vec![json!("Everyone")]));
        assert!(groups.holds(&claims(json!({"groups": ["Admins", "Everyone"]}))));
        assert!(!groups.holds(&claims(json!({"groups": ["EveryoneElse"]}))));
        assert!(!groups.holds(&claims(json!({"groups": "Everyone-ish"}))));
    }

    #[test]
    fn includes_any_needs_one_value_as_a_member() {
        let rule = ClaimRule::new(
            "groups",
            Predicate::IncludesAny(vec![json!("Group1"), json!("Group2")]),
        );
        assert!(rule.holds(&claims(json!({"groups": ["Everyone", "Group2"]}))));
        assert!(rule.holds(&claims(json!({"groups": "Group1 Everyone"}))));
        assert!(!rule.holds(&claims(json!({"groups": ["Everyone"]}))));
        assert!(!rule.holds(&claims(json!({"groups": "Group12"}))));
        assert!(!rule.holds(&claims(json!({"groups": []}))));
        assert!(!rule.holds(&claims(json!({}))));
    }

    #[test]
    fn includes_needs_every_value() {
        let rule = ClaimRule::new("g", Predicate::Includes(vec![json!("a"), json!("b")]));
        assert!(rule.holds(&claims(json!({"g": ["b", "a"]}))));
        assert!(!rule.holds(&claims(json!({"g": ["a"]}))));
    }

    #[test]
    fn equals_compares_whole_values_and_types() {
        let rule = ClaimRule::new("cid", Predicate::Equals(json!("abc")));
        assert!(rule.holds(&claims(json!({"cid": "abc"}))));
        assert!(!rule.holds(&claims(json!({"cid": "abcd"}))));
        assert!(!rule.holds(&claims(json!({"cid": ["abc"]}))));
        assert!(!rule.holds(&claims(json!({}))));
        let number = ClaimRule::new("ver", Predicate::Equals(json!(1)));
        assert!(!number.holds(&claims(json!({"ver": "1"}))));
    }

    #[test]
    fn any_of_accepts_one_of_several() {
        let rule = ClaimRule::new(
            "tier",
            Predicate::AnyOf(vec![json!("gold"), json!("silver")]),
        );
        assert!(rule.holds(&claims(json!({"tier": "silver"}))));
        assert!(!rule.holds(&claims(json!({"tier": "bronze"}))));
    }

    #[test]
    fn dotted_paths_reach_nested_claims() {
        let rule = ClaimRule::new(
            "realm_access.roles",
            Predicate::Includes(vec![json!("admin")]),
        );
        assert!(rule.holds(&claims(json!({"realm_access": {"roles": ["admin"]}}))));
        assert!(!rule.holds(&claims(json!({"realm_access": ["admin"]}))));
        let url_named = ClaimRule::new("https://x.io/tier", Predicate::Equals(json!("gold")));
        assert!(url_named.holds(&claims(json!({"https://x.io/tier": "gold"}))));
    }

    #[test]
    fn scopes_come_from_scp_or_scope() {
        assert_eq!(scopes(&claims(json!({"scp": ["a", "b"]}))), vec!["a", "b"]);
        assert_eq!(scopes(&claims(json!({"scope": "a  b"}))), vec!["a", "b"]);
        assert!(scopes(&claims(json!({"scope": ["a"]}))).is_empty());
    }
}
