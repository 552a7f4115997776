//! `dpop:`: how DPoP proofs (RFC 9449) are checked. Every field has a default, so the
//! section is optional; `routes[].dpop` (in `routes.rs`) says which routes take DPoP.

use std::time::Duration;

use url::Url;

use super::secret::read_secret;
use super::Issues;
use crate::algorithm::Algorithm;
use crate::config::raw::{RawDpop, RawReplay};
use crate::config::{DpopSettings, NonceSettings, ReplaySettings, ResourceSettings};
use crate::jwk::is_hmac;
use crate::route::{DpopMode, RuleTable};

/// The shortest nonce secret: 256 bits, as for HS256 keys.
const MIN_NONCE_SECRET: usize = 32;

/// The settings, with `external_url` defaulting to the origin of `resource`'s id (see
/// `resource::origin_resource`).
pub(super) fn dpop(
    issues: &mut Issues,
    raw: &RawDpop,
    resource: Option<&ResourceSettings>,
    rules: &RuleTable,
) -> DpopSettings {
    let defaults = DpopSettings::default();
    let external_url = match &raw.external_url {
        Some(text) => external_url(issues, text),
        None => resource
            .and_then(|r| Url::parse(&r.id).ok())
            .map(|u| u.origin().ascii_serialization()),
    };
    let algorithms = match &raw.algorithms {
        None => defaults.algorithms.clone(),
        Some(names) => algorithms(issues, names),
    };
    let window = raw.iat_window.as_ref();
    let iat_past = issues.duration(
        "dpop.iat_window.past",
        window.and_then(|w| w.past.as_deref()),
        defaults.iat_past,
    );
    let iat_future = issues.duration(
        "dpop.iat_window.future",
        window.and_then(|w| w.future.as_deref()),
        defaults.iat_future,
    );
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&iat_past) {
        issues.add(
            "dpop.iat_window.past",
            format!("{iat_past:?} is out of range"),
            "use 1s to 10m (RFC 9449 §11.1: a short window; 60s is usual)",
        );
    }
    if iat_future > Duration::from_secs(60) {
        issues.add(
            "dpop.iat_window.future",
            format!("{iat_future:?} is out of range"),
            "use 0s to 60s: the clock skew allowed (5s is usual)",
        );
    }
    let nonce = raw.nonce.as_ref().and_then(|n| {
        let lifetime = issues.duration(
            "dpop.nonce.lifetime",
            n.lifetime.as_deref(),
            Duration::from_secs(60),
        );
        if !(Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&lifetime) {
            issues.add(
                "dpop.nonce.lifetime",
                format!("{lifetime:?} is out of range"),
                "use 10s to 1h",
            );
        }
        let hint = "write nonce: { secret_file: /run/secrets/dpop-nonce } or nonce: { secret_env: DPOP_NONCE_SECRET }";
        let secret = read_secret(
            issues,
            "dpop.nonce",
            ("secret_file", n.secret_file.as_deref()),
            ("secret_env", n.secret_env.as_deref()),
            hint,
        )?;
        if secret.bytes.len() < MIN_NONCE_SECRET {
            issues.add(
                "dpop.nonce",
                format!(
                    "the secret ({}) is {} bytes; at least {MIN_NONCE_SECRET} are needed",
                    secret.origin,
                    secret.bytes.len()
                ),
                "e.g. head -c 32 /dev/urandom | base64 > /run/secrets/dpop-nonce",
            );
            return None;
        }
        Some(NonceSettings { secret, lifetime })
    });
    let replay = replay(issues, &raw.replay);
    let required_somewhere = rules
        .routes
        .iter()
        .map(|r| r.rule.dpop)
        .chain([rules.default.dpop])
        .any(|mode| mode == DpopMode::Required);
    if required_somewhere && external_url.is_none() && raw.external_url.is_none() {
        issues.add(
            "dpop.external_url",
            "a route requires DPoP, but the URL clients use is not known, so no proof's htu can be checked",
            "write dpop: { external_url: https://api.example.com } (or resource: { id: ... })",
        );
    }
    DpopSettings {
        external_url,
        algorithms,
        iat_past,
        iat_future,
        nonce,
        replay,
    }
}

/// An absolute http(s) URL naming only an origin → its RFC 6454 serialisation.
fn external_url(issues: &mut Issues, text: &str) -> Option<String> {
    let hint = "write the scheme, host and port clients use, e.g. https://api.example.com";
    let Ok(url) = Url::parse(text) else {
        issues.add("dpop.external_url", format!("`{text}` is not a URL"), hint);
        return None;
    };
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !bare {
        issues.add(
            "dpop.external_url",
            format!("`{text}` is not an http(s) origin (no path, query, fragment or user)"),
            hint,
        );
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn algorithms(issues: &mut Issues, names: &[String]) -> Vec<Algorithm> {
    if names.is_empty() {
        issues.add(
            "dpop.algorithms",
            "the list of algorithms is empty",
            "list at least one of ES256, ES384, ES512, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512",
        );
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match Algorithm::from_name(name) {
            Some(alg) if !is_hmac(alg) => out.push(alg),
            _ => issues.add(
                format!("dpop.algorithms[{i}]"),
                format!("`{name}` is not an asymmetric signature algorithm"),
                "RFC 9449 §4.2: proofs use asymmetric algorithms: ES256, ES384, ES512, EdDSA, PS256, PS384, PS512, RS256, RS384 or RS512",
            ),
        }
    }
    out
}

fn replay(issues: &mut Issues, raw: &RawReplay) -> ReplaySettings {
    match raw.store.as_deref().unwrap_or("memory") {
        "memory" => {
            for (field, set) in [
                ("url", raw.url.is_some()),
                ("timeout", raw.timeout.is_some()),
                ("key_prefix", raw.key_prefix.is_some()),
            ] {
                if set {
                    issues.add(
                        format!("dpop.replay.{field}"),
                        format!("{field} applies to store: redis only"),
                        "remove it, or write store: redis",
                    );
                }
            }
            let max_entries = raw.max_entries.unwrap_or(1_000_000);
            if !(1..=100_000_000).contains(&max_entries) {
                issues.add(
                    "dpop.replay.max_entries",
                    format!("{max_entries} is out of range"),
                    "use 1 to 100000000 (about 64 bytes each; proofs are kept for the iat window, so allow for peak proofs per second times past + future)",
                );
            }
            ReplaySettings::Memory { max_entries }
        }
        "redis" => {
            if raw.max_entries.is_some() {
                issues.add(
                    "dpop.replay.max_entries",
                    "max_entries applies to store: memory only (Redis bounds itself)",
                    "remove it",
                );
            }
            let url = raw.url.clone().unwrap_or_default();
            let parsed = Url::parse(&url).ok();
            if !parsed
                .as_ref()
                .is_some_and(|u| u.scheme() == "redis" && u.host().is_some())
            {
                issues.add(
                    "dpop.replay.url",
                    match raw.url {
                        None => "store: redis needs the server's url".to_owned(),
                        Some(_) => "not a redis:// URL with a host".to_owned(),
                    },
                    "write url: redis://127.0.0.1:6379/0 (a password goes in the URL: redis://:PASSWORD@host:6379)",
                );
            }
            let timeout = issues.duration(
                "dpop.replay.timeout",
                raw.timeout.as_deref(),
                Duration::from_millis(250),
            );
            if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&timeout) {
                issues.add(
                    "dpop.replay.timeout",
                    format!("{timeout:?} is out of range"),
                    "use 10ms to 10s",
                );
            }
            ReplaySettings::Redis {
                url,
                timeout,
                key_prefix: raw
                    .key_prefix
                    .clone()
                    .unwrap_or_else(|| "tokengate:dpop:".into()),
            }
        }
        other => {
            issues.add(
                "dpop.replay.store",
                format!("`{other}` is not a replay store"),
                "use memory (one process) or redis (shared by every replica)",
            );
            ReplaySettings::Memory {
                max_entries: 1_000_000,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use crate::algorithm::Algorithm;
    use crate::config::ReplaySettings;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("dpop: { external_url: api.example.com }\n", "dpop.external_url", "is not a URL"),
            ("dpop: { external_url: \"https://api.example.com/api\" }\n", "dpop.external_url", "is not an http(s) origin"),
            ("dpop: { external_url: \"https://api.example.com?x=1\" }\n", "dpop.external_url", "is not an http(s) origin"),
            ("dpop: { external_url: \"ftp://api.example.com\" }\n", "dpop.external_url", "is not an http(s) origin"),
            ("dpop: { algorithms: [] }\n", "dpop.algorithms", "the list of algorithms is empty"),
            ("dpop: { algorithms: [ES256, HS256] }\n", "dpop.algorithms[1]", "`HS256` is not an asymmetric"),
            ("dpop: { algorithms: [none] }\n", "dpop.algorithms[0]", "`none` is not an asymmetric"),
            ("dpop: { iat_window: { past: 0s } }\n", "dpop.iat_window.past", "out of range"),
            ("dpop: { iat_window: { past: 1h } }\n", "dpop.iat_window.past", "out of range"),
            ("dpop: { iat_window: { future: 2m } }\n", "dpop.iat_window.future", "out of range"),
            ("dpop: { iat_window: { past: soon } }\n", "dpop.iat_window.past", "`soon` is not a duration"),
            ("dpop: { nonce: { lifetime: 60s } }\n", "dpop.nonce", "name exactly one of secret_file and secret_env"),
            ("dpop: { nonce: { secret_env: TOKENGATE_TEST_UNSET_DPOP_SECRET } }\n", "dpop.nonce.secret_env", "is not set"),
            ("dpop: { nonce: { secret_env: PATH, lifetime: 1s } }\n", "dpop.nonce.lifetime", "out of range"),
            ("dpop: { replay: { store: disk } }\n", "dpop.replay.store", "`disk` is not a replay store"),
            ("dpop: { replay: { store: redis } }\n", "dpop.replay.url", "store: redis needs the server's url"),
            ("dpop: { replay: { store: redis, url: \"http://127.0.0.1:6379\" } }\n", "dpop.replay.url", "not a redis:// URL"),
            ("dpop: { replay: { store: redis, url: \"redis://127.0.0.1\", max_entries: 10 } }\n", "dpop.replay.max_entries", "store: memory only"),
            ("dpop: { replay: { store: redis, url: \"redis://127.0.0.1\", timeout: 1m } }\n", "dpop.replay.timeout", "out of range"),
            ("dpop: { replay: { url: \"redis://127.0.0.1\" } }\n", "dpop.replay.url", "store: redis only"),
            ("dpop: { replay: { max_entries: 0 } }\n", "dpop.replay.max_entries", "out of range"),
            ("routes:\n  - { path: /api/**, dpop: required }\n", "dpop.external_url", "a route requires DPoP"),
        ]);
    }

    #[test]
    fn the_redis_password_never_shows_in_debug() {
        let s = settings(
            "dpop: { replay: { store: redis, url: \"redis://:hunter2@10.0.0.1:6380/2\" } }\n",
        )
        .ok()
        .map(|s| format!("{:?}", s.dpop));
        let Some(text) = s else { panic!("valid") };
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("10.0.0.1:6380"), "{text}");
    }

    #[test]
    fn a_short_nonce_secret_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("secret");
        std::fs::write(&path, b"0123456789abcdef\n").expect("written");
        let yaml = format!("dpop: {{ nonce: {{ secret_file: {} }} }}\n", path.display());
        let problems = problems(settings(&yaml));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("is 16 bytes; at least 32"),
            "{problems:?}"
        );
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "dpop: { external_url: \"https://api.example.com:8443/\" }\n",
            "dpop: { algorithms: [ES256, EdDSA] , iat_window: { past: 30s, future: 0s } }\n",
            "dpop: { replay: { store: redis, url: \"redis://:pw@10.0.0.1:6380/2\", timeout: 100ms } }\n",
            "resource: { id: \"https://api.example.com/v1\" }\nroutes:\n  - { path: /api/**, dpop: required }\n",
        ]);
        let s = settings("").ok().map(|s| s.dpop);
        let Some(d) = s else {
            panic!("the empty configuration is valid")
        };
        assert_eq!(d.external_url, None);
        assert_eq!(
            d.algorithms,
            [
                Algorithm::ES256,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::RS256
            ]
        );
        assert_eq!(
            (d.iat_past, d.iat_future),
            (Duration::from_secs(60), Duration::from_secs(5))
        );
        assert_eq!(
            d.replay,
            ReplaySettings::Memory {
                max_entries: 1_000_000
            }
        );
        // The origin is serialised as RFC 6454 does: lower case, default port dropped.
        let s = settings("dpop: { external_url: \"HTTPS://API.example.com:443\" }\n")
            .ok()
            .and_then(|s| s.dpop.external_url);
        assert_eq!(s.as_deref(), Some("https://api.example.com"));
        let s = settings("resource: { id: \"https://api.example.com/v1\" }\n")
            .ok()
            .and_then(|s| s.dpop.external_url);
        assert_eq!(s.as_deref(), Some("https://api.example.com"));
    }
}
