//! Secrets (`hmac:`, introspection client secrets, `dpop.nonce`): read at load from a file
//! or an environment variable, never written in the configuration itself. Shared by the
//! sections that take one.

use super::Issues;
use crate::config::Secret;

/// A secret from exactly one of a file (its bytes, without one final line break) or an
/// environment variable, never written in the configuration; `file` and `env` are the
/// field names and values under `at`.
pub(super) fn read_secret(
    issues: &mut Issues,
    at: &str,
    file: (&str, Option<&str>),
    env: (&str, Option<&str>),
    hint: &str,
) -> Option<Secret> {
    let (origin, bytes) = match (file.1, env.1) {
        (Some(path), None) => match std::fs::read(path) {
            Ok(mut bytes) => {
                // Files written by `echo` or an editor end in a line break that is not part of
                // the secret.
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                (format!("file {path}"), bytes)
            }
            Err(e) => {
                issues.add(
                    format!("{at}.{}", file.0),
                    format!("cannot read `{path}`: {e}"),
                    "give the path of a file holding the secret",
                );
                return None;
            }
        },
        (None, Some(name)) => match std::env::var_os(name) {
            Some(value) => (format!("env {name}"), value.into_encoded_bytes()),
            None => {
                issues.add(
                    format!("{at}.{}", env.0),
                    format!("environment variable {name} is not set"),
                    format!("export {name}=... before starting"),
                );
                return None;
            }
        },
        _ => {
            issues.add(
                at,
                format!("name exactly one of {} and {}", file.0, env.0),
                hint,
            );
            return None;
        }
    };
    if bytes.is_empty() {
        issues.add(at, format!("the secret ({origin}) is empty"), hint);
        return None;
    }
    Some(Secret {
        origin,
        bytes: bytes.into(),
    })
}
