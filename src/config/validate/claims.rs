//! Claim rules, `claim: value` or `claim: { predicate: ... }`: shared by `issuers[i].claims`
//! (every token of the issuer) and the `claims` of `routes[i]` and `default`.

use super::Issues;
use crate::claims::{ClaimRule, Predicate};

/// `claim: value` means equals; `claim: { equals | includes | any_of: ... }` names a predicate.
pub(super) fn claim_rule(
    issues: &mut Issues,
    at: &str,
    name: &str,
    value: &serde_yaml::Value,
) -> Option<ClaimRule> {
    let json = |v: &serde_yaml::Value| serde_json::to_value(v).ok();
    let hint = "write `claim: value`, or one of `{ equals: v }`, `{ includes: [a, b] }`, `{ includes_any: [a, b] }`, `{ any_of: [a, b] }`";
    if name.is_empty() {
        issues.add(at, "the claim name is empty", hint);
        return None;
    }
    let predicate = match value {
        serde_yaml::Value::Mapping(map) => {
            if map.len() != 1 {
                issues.add(at, "a claim takes exactly one predicate", hint);
                return None;
            }
            let (key, arg) = map.iter().next()?;
            let list = |v: &serde_yaml::Value| match v {
                serde_yaml::Value::Sequence(items) => items.iter().filter_map(json).collect(),
                other => json(other).into_iter().collect::<Vec<_>>(),
            };
            match key.as_str() {
                Some("equals") => Predicate::Equals(json(arg)?),
                Some("includes") => Predicate::Includes(list(arg)),
                Some("includes_any") => Predicate::IncludesAny(list(arg)),
                Some("any_of") => Predicate::AnyOf(list(arg)),
                _ => {
                    issues.add(
                        at,
                        format!(
                            "`{}` is not a claim predicate",
                            serde_yaml::to_string(key).unwrap_or_default().trim()
                        ),
                        hint,
                    );
                    return None;
                }
            }
        }
        serde_yaml::Value::Null => {
            issues.add(at, "the claim has no value", hint);
            return None;
        }
        other => Predicate::Equals(json(other)?),
    };
    if let Predicate::Includes(v) | Predicate::IncludesAny(v) | Predicate::AnyOf(v) = &predicate {
        if v.is_empty() {
            issues.add(at, "the list of values is empty", hint);
            return None;
        }
    }
    Some(ClaimRule::new(name, predicate))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("default: { claims: { \"\": x } }\n", "default.claims.", "the claim name is empty"),
            ("default: { claims: { cid: { equals: a, includes: [a] } } }\n", "default.claims.cid", "a claim takes exactly one predicate"),
            ("default: { claims: { cid: {} } }\n", "default.claims.cid", "a claim takes exactly one predicate"),
            ("default: { claims: { cid: { contains: a } } }\n", "default.claims.cid", "`contains` is not a claim predicate"),
            ("default: { claims: { cid: { [a]: b } } }\n", "default.claims.cid", "`- a` is not a claim predicate"),
            ("default: { claims: { cid: null } }\n", "default.claims.cid", "the claim has no value"),
            ("default: { claims: { cid: } }\n", "default.claims.cid", "the claim has no value"),
            ("default: { claims: { groups: { includes: [] } } }\n", "default.claims.groups", "the list of values is empty"),
            ("default: { claims: { groups: { includes_any: [] } } }\n", "default.claims.groups", "the list of values is empty"),
            ("default: { claims: { groups: { any_of: [] } } }\n", "default.claims.groups", "the list of values is empty"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "default: { claims: { cid: abc, n: 1, ok: true } }\n",
            "default: { claims: { cid: { equals: abc }, tenant.id: { any_of: [a, b] } } }\n",
            "default: { claims: { groups: { includes: admin }, roles: { includes_any: [a, b] } } }\n",
        ]);
        let Ok(s) = settings(
            "default: { claims: { cid: { equals: abc }, groups: { includes: [a, b] } } }\n",
        ) else {
            panic!("valid claims")
        };
        assert_eq!(s.rules.default.claims.len(), 2);
    }
}
