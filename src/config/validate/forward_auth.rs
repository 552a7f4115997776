//! `forward_auth:` as written → [`ForwardAuthSettings`], every rule in one function.
//!
//! Rules: `mode` is required (`nginx`, `traefik`, `caddy` or `envoy`: how the ingress says
//! what the original request was is configured, never guessed); `trusted_proxies` is
//! required, non-empty, and cannot trust everyone (`0.0.0.0/0`, `::/0`); the decision path
//! is `path` for nginx, Traefik and Caddy and `path_prefix` for Envoy (default `/_auth`
//! either way; the other field is refused), written canonically, and not one of
//! tokengate's own endpoints.

use ipnet::IpNet;

use super::Issues;
use crate::config::raw::RawForwardAuth;
use crate::config::settings::{ForwardAuthMode, ForwardAuthSettings};
use crate::route::{canonicalize, PathOptions};

/// The decision path (or Envoy's prefix) when none is written.
const DEFAULT_PATH: &str = "/_auth";

/// Paths tokengate answers itself: a decision path there would hide them (or be hidden).
const OWN_PATHS: &[&str] = &["/healthz", "/readyz", "/_dev/token"];

/// Checks `forward_auth:` (`None`: not configured, nothing to check). Every problem is
/// pushed onto `issues` with its YAML path and a hint; the settings are `None` when there is
/// a problem or no block.
pub(super) fn validate_forward_auth(
    raw: Option<&RawForwardAuth>,
    issues: &mut Issues,
) -> Option<ForwardAuthSettings> {
    let raw = raw?;
    let before = issues.0.len();
    let mut add = |path: &str, message: String, hint: &str| {
        issues.add(format!("forward_auth.{path}"), message, hint);
    };

    let mode = match raw.mode.as_deref() {
        Some("nginx") => Some(ForwardAuthMode::Nginx),
        Some("traefik") => Some(ForwardAuthMode::Traefik),
        Some("caddy") => Some(ForwardAuthMode::Caddy),
        Some("envoy") => Some(ForwardAuthMode::Envoy),
        Some(other) => {
            add(
                "mode",
                format!("`{other}` is not a forward-auth mode"),
                "use nginx (auth_request), traefik (ForwardAuth), caddy (forward_auth) or envoy (ext_authz HTTP service)",
            );
            None
        }
        None => {
            add(
                "mode",
                "the mode is required: it says which headers carry the original request".into(),
                "add mode: nginx, traefik, caddy or envoy (the ingress that asks)",
            );
            None
        }
    };

    let trusted_proxies: Vec<IpNet> = match &raw.trusted_proxies {
        None => {
            add(
                "trusted_proxies",
                "trusted_proxies is required: only the ingress may say what the original request was".into(),
                "list the ingress's addresses, e.g. trusted_proxies: [127.0.0.1/32] or [10.0.3.0/24]",
            );
            Vec::new()
        }
        Some(list) if list.is_empty() => {
            add(
                "trusted_proxies",
                "trusted_proxies is empty, so no ingress could ever ask".into(),
                "list the ingress's addresses, e.g. trusted_proxies: [127.0.0.1/32] or [10.0.3.0/24]",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let at = format!("trusted_proxies[{i}]");
                let parsed = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
                match parsed {
                    Ok(net) if net.prefix_len() == 0 => {
                        add(
                            &at,
                            format!("`{text}` trusts every address: any client could name the request to decide on"),
                            "list only the ingress's addresses, e.g. 10.0.3.0/24",
                        );
                        None
                    }
                    Ok(net) => Some(net),
                    Err(_) => {
                        add(
                            &at,
                            format!("`{text}` is not an address or CIDR range"),
                            "write 10.0.0.0/8, 192.168.1.7 or fd00::/8",
                        );
                        None
                    }
                }
            })
            .collect(),
    };

    let envoy = mode == Some(ForwardAuthMode::Envoy);
    let (field, written, other, other_written) = if envoy {
        ("path_prefix", &raw.path_prefix, "path", &raw.path)
    } else {
        ("path", &raw.path, "path_prefix", &raw.path_prefix)
    };
    if other_written.is_some() && mode.is_some() {
        let hint = if envoy {
            "envoy mode uses path_prefix (the prefix of ext_authz's http_service); remove path"
        } else {
            "path_prefix is for envoy mode; this mode uses path"
        };
        add(
            other,
            format!(
                "{other} does not apply to mode {}",
                raw.mode.as_deref().unwrap_or_default()
            ),
            hint,
        );
    }
    let path = written.clone().unwrap_or_else(|| DEFAULT_PATH.into());
    if let Some(why) = path_problem(&path) {
        add(
            field,
            format!("`{path}` cannot be the decision path: {why}"),
            "write an absolute path such as /_auth, without a query, dot segments, repeated or trailing slashes",
        );
    }

    let settings = ForwardAuthSettings {
        mode: mode?,
        path,
        trusted_proxies,
    };
    (issues.0.len() == before).then_some(settings)
}

/// Why `path` cannot be a decision path, if it cannot.
fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') || path == "/" {
        return Some("it must be an absolute path below /");
    }
    if path.ends_with('/') {
        return Some("it must not end with a slash");
    }
    match canonicalize(path, PathOptions::default()) {
        Ok(c) if c.path == path => {}
        _ => return Some("it is not written canonically"),
    }
    if OWN_PATHS.contains(&path) || path.starts_with("/.well-known/") {
        return Some("tokengate answers that path itself");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issues (`path: message`) for a `forward_auth:` block written in YAML.
    fn check(yaml: &str) -> Result<ForwardAuthSettings, Vec<String>> {
        let raw: RawForwardAuth = match serde_yaml::from_str(yaml) {
            Ok(raw) => raw,
            Err(e) => panic!("test YAML does not parse: {e}\n{yaml}"),
        };
        let mut issues = Issues::default();
        match validate_forward_auth(Some(&raw), &mut issues) {
            Some(settings) if issues.0.is_empty() => Ok(settings),
            Some(_) => panic!("settings returned beside issues"),
            None => Err(issues
                .0
                .into_iter()
                .map(|i| {
                    assert!(i.hint.as_deref().is_some_and(|h| !h.is_empty()));
                    format!("{}: {}", i.path, i.message)
                })
                .collect()),
        }
    }

    #[test]
    fn absent_block_is_no_endpoint() {
        let mut issues = Issues::default();
        assert!(validate_forward_auth(None, &mut issues).is_none());
        assert!(issues.0.is_empty());
    }

    #[test]
    fn valid_blocks_and_defaults() {
        let ok = [
            (
                "{ mode: nginx, trusted_proxies: [127.0.0.1] }",
                ForwardAuthMode::Nginx,
                "/_auth",
            ),
            (
                "{ mode: traefik, path: /auth/decide, trusted_proxies: [10.0.0.0/8, 'fd00::/8'] }",
                ForwardAuthMode::Traefik,
                "/auth/decide",
            ),
            (
                "{ mode: caddy, trusted_proxies: [192.168.1.7] }",
                ForwardAuthMode::Caddy,
                "/_auth",
            ),
            (
                "{ mode: envoy, trusted_proxies: [127.0.0.1/32] }",
                ForwardAuthMode::Envoy,
                "/_auth",
            ),
            (
                "{ mode: envoy, path_prefix: /ext-authz, trusted_proxies: [127.0.0.1/32] }",
                ForwardAuthMode::Envoy,
                "/ext-authz",
            ),
        ];
        for (yaml, mode, path) in ok {
            match check(yaml) {
                Ok(s) => {
                    assert_eq!(s.mode, mode, "{yaml}");
                    assert_eq!(s.path, path, "{yaml}");
                    assert!(!s.trusted_proxies.is_empty(), "{yaml}");
                }
                Err(issues) => panic!("{yaml}: {issues:?}"),
            }
        }
    }

    /// One row per rule: the block, and a part of the one issue it must raise.
    #[test]
    fn every_rule_names_its_field() {
        let rows = [
            // mode: required, one of four
            ("{ trusted_proxies: [127.0.0.1] }", "forward_auth.mode: the mode is required"),
            ("{ mode: haproxy, trusted_proxies: [127.0.0.1] }", "forward_auth.mode: `haproxy` is not a forward-auth mode"),
            ("{ mode: Nginx, trusted_proxies: [127.0.0.1] }", "forward_auth.mode: `Nginx` is not"),
            // trusted_proxies: required, non-empty, parsable, never everyone
            ("{ mode: nginx }", "forward_auth.trusted_proxies: trusted_proxies is required"),
            ("{ mode: nginx, trusted_proxies: [] }", "forward_auth.trusted_proxies: trusted_proxies is empty"),
            ("{ mode: nginx, trusted_proxies: [localhost] }", "forward_auth.trusted_proxies[0]: `localhost` is not an address"),
            ("{ mode: nginx, trusted_proxies: [127.0.0.1, 0.0.0.0/0] }", "forward_auth.trusted_proxies[1]: `0.0.0.0/0` trusts every address"),
            ("{ mode: nginx, trusted_proxies: ['::/0'] }", "forward_auth.trusted_proxies[0]: `::/0` trusts every address"),
            // path / path_prefix: the field that fits the mode
            ("{ mode: envoy, path: /_auth, trusted_proxies: [127.0.0.1] }", "forward_auth.path: path does not apply to mode envoy"),
            ("{ mode: nginx, path_prefix: /_auth, trusted_proxies: [127.0.0.1] }", "forward_auth.path_prefix: path_prefix does not apply to mode nginx"),
            // the path: absolute, canonical, not tokengate's own
            ("{ mode: nginx, path: _auth, trusted_proxies: [127.0.0.1] }", "forward_auth.path: `_auth` cannot be the decision path: it must be an absolute path"),
            ("{ mode: nginx, path: /, trusted_proxies: [127.0.0.1] }", "forward_auth.path: `/` cannot be the decision path"),
            ("{ mode: nginx, path: /auth/, trusted_proxies: [127.0.0.1] }", "must not end with a slash"),
            ("{ mode: traefik, path: //auth, trusted_proxies: [127.0.0.1] }", "it is not written canonically"),
            ("{ mode: traefik, path: /a/../auth, trusted_proxies: [127.0.0.1] }", "it is not written canonically"),
            ("{ mode: caddy, path: '/auth?x=1', trusted_proxies: [127.0.0.1] }", "it is not written canonically"),
            ("{ mode: caddy, path: /%61uth, trusted_proxies: [127.0.0.1] }", "it is not written canonically"),
            ("{ mode: caddy, path: /healthz, trusted_proxies: [127.0.0.1] }", "tokengate answers that path itself"),
            ("{ mode: envoy, path_prefix: /.well-known/x, trusted_proxies: [127.0.0.1] }", "forward_auth.path_prefix: `/.well-known/x` cannot be the decision path: tokengate answers"),
        ];
        for (yaml, expected) in rows {
            match check(yaml) {
                Ok(s) => panic!("{yaml}: accepted as {s:?}"),
                Err(issues) => {
                    assert_eq!(issues.len(), 1, "{yaml}: {issues:?}");
                    assert!(issues[0].contains(expected), "{yaml}: {issues:?}");
                }
            }
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let issues = match check("{ mode: x, path: y, trusted_proxies: [z] }") {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(issues) => issues,
        };
        assert_eq!(issues.len(), 3, "{issues:?}");
    }
}
