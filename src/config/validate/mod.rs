//! Raw configuration → runtime [`Settings`], collecting every problem with its YAML path.
//!
//! One file per section of the configuration file; [`validate`] calls them in the order the
//! problems are reported. Each section takes its raw part (and, where it depends on another
//! section, that section's validated value), records what is wrong in [`Issues`] and returns
//! its runtime settings, falling back to the default so that later sections can still be
//! checked. The sections import [`Issues`] from here and [`claims`] (the claim rules that
//! issuers and routes share), never each other.

mod cache;
mod claims;
mod cors;
mod dev_issuer;
mod dpop;
mod forward;
mod forward_auth;
mod issuer;
mod keys;
mod limits;
mod listen;
mod log;
mod resource;
mod routes;
mod secret;
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawConfig;
use super::{parse_duration, Overrides, Settings};

/// A problem before its line is known.
pub struct Issue {
    /// Dotted YAML path of the field, e.g. `issuers[0].audiences`, or the command-line
    /// option (`--listen`, `--upstream`) the value came from.
    pub path: String,
    /// What is wrong, naming the value where there is one.
    pub message: String,
    /// What would be valid; `None` when there is nothing more to say.
    pub hint: Option<String>,
}

/// The problems found so far, in the order they are reported.
#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    /// Records a problem; an empty `hint` means none.
    fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.0.push(Issue {
            path: path.into(),
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        });
    }

    /// The duration written at `path` (see [`parse_duration`]), or `default` when it is
    /// absent or, with a problem recorded, not a duration.
    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Some(d) => d,
            None => {
                self.add(
                    path,
                    format!("`{text}` is not a duration"),
                    "write a whole number with a unit: 250ms, 30s, 5m, 1h or 1d",
                );
                default
            }
        }
    }
}

/// Checks every section of `raw`, with the command line's `overrides` taking precedence,
/// and returns the runtime settings, or every problem found, in section order (the caller
/// sorts them by line). `Settings::source` is left empty for the caller to fill in.
pub fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Settings, Vec<Issue>> {
    let mut issues = Issues::default();
    let (listen, listen_path) = listen::listen(&mut issues, raw.listen.as_deref(), overrides);
    let issuers = issuer::issuers(&mut issues, &raw.issuers);
    let dev_issuer = raw
        .dev_issuer
        .as_ref()
        .map(|d| dev_issuer::dev_issuer(&mut issues, d, listen, listen_path));
    let issuers = issuer::with_dev_issuer(&mut issues, issuers, dev_issuer.as_ref());
    let keys = keys::keys(&mut issues, &raw.keys);
    let cors = cors::cors(&mut issues, raw.cors.as_ref());
    let log = log::log(&mut issues, &raw.log, overrides);
    let limits = limits::limits(&mut issues, &raw.limits);
    let tls = listen::tls(&mut issues, raw.tls.as_ref());
    let admin_listen = listen::admin(&mut issues, raw.admin.as_ref(), listen);
    let shutdown_timeout = limits::shutdown_timeout(&mut issues, raw.shutdown_timeout.as_deref());
    let upstream = upstream::upstream(&mut issues, raw.upstream.as_ref(), overrides);
    cors::needs_upstream(&mut issues, &cors, upstream.is_some());
    let forward = forward::forward(&mut issues, &raw.forward);
    let trusted_proxies = listen::trusted_proxies(&mut issues, &raw.trusted_proxies);
    let client_certificate = listen::client_certificate(
        &mut issues,
        raw.client_certificate.as_ref(),
        &trusted_proxies,
    );
    let paths = routes::path_options(&raw.paths);
    let mut rules = routes::rules(
        &mut issues,
        raw.default.as_ref(),
        &raw.routes,
        paths,
        &issuers,
    );
    let resources = resource::resources(
        &mut issues,
        raw.resource.as_ref(),
        raw.resources.as_deref(),
        resource::Context {
            rules: &mut rules,
            issuers: &issuers,
            paths,
            strip_authorization: raw.forward.strip_authorization,
        },
    );
    let dpop = dpop::dpop(
        &mut issues,
        &raw.dpop,
        resource::origin_resource(&resources),
        &rules,
    );
    let cache = cache::cache(&mut issues, &raw.cache);
    let forward_auth = forward_auth::validate_forward_auth(raw.forward_auth.as_ref(), &mut issues);
    let opaque_tokens = issuer::opaque_tokens(&mut issues, raw.opaque_tokens.as_deref(), &issuers);

    if !issues.0.is_empty() {
        return Err(issues.0);
    }
    Ok(Settings {
        source: PathBuf::new(),
        listen,
        issuers,
        dev_issuer,
        keys,
        cors,
        log,
        limits,
        shutdown_timeout,
        upstream,
        forward,
        trusted_proxies,
        rules,
        paths,
        resources,
        cache,
        generation: next_generation(),
        tls,
        admin_listen,
        forward_auth,
        opaque_tokens,
        dpop,
        client_certificate,
    })
}

/// A process-wide counter: every successful load gets a new generation.
fn next_generation() -> u64 {
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What the sections' tables share: YAML in, problems out.
#[cfg(test)]
mod testing {
    use super::{validate, Issue, Settings};
    use crate::config::raw::RawConfig;
    use crate::config::Overrides;

    /// An issuer for files about another section: without one, every file would also report
    /// that no issuer is configured.
    pub const ISSUER: &str =
        "issuers:\n  - issuer: https://idp.example.com\n    audiences: [api]\n";

    /// Parses `yaml` as the file's text (after [`ISSUER`] when it has neither an `issuers:`
    /// nor a `dev_issuer:` line) and validates it with `overrides`.
    pub fn validate_with(yaml: &str, overrides: &Overrides) -> Result<Settings, Vec<Issue>> {
        let has_issuer = yaml
            .lines()
            .any(|l| l.starts_with("issuers:") || l.starts_with("dev_issuer:"));
        let text = if has_issuer {
            yaml.to_owned()
        } else {
            format!("{ISSUER}{yaml}")
        };
        let raw: RawConfig = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("the row's YAML does not parse: {e}\n{text}"));
        validate(raw, overrides)
    }

    /// As [`validate_with`], without overrides.
    pub fn settings(yaml: &str) -> Result<Settings, Vec<Issue>> {
        validate_with(yaml, &Overrides::default())
    }

    /// `path: message` of each problem, in order.
    pub fn problems(result: Result<Settings, Vec<Issue>>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(issues) => issues
                .into_iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect(),
        }
    }

    /// A table row: YAML that breaks exactly one rule, the path of the field the problem
    /// names, and a part of its message.
    pub type Row<'a> = (&'a str, &'a str, &'a str);

    /// Each row's YAML yields exactly one problem, at the row's path, whose message contains
    /// the row's text. (One problem: the row breaks that rule and no other.)
    pub fn assert_rows(rows: &[Row<'_>]) {
        assert_rows_with(&Overrides::default(), rows);
    }

    /// As [`assert_rows`], with `overrides` as given on the command line.
    pub fn assert_rows_with(overrides: &Overrides, rows: &[Row<'_>]) {
        for (yaml, path, message) in rows {
            let issues = match validate_with(yaml, overrides) {
                Ok(_) => panic!("no problem for {path}:\n{yaml}"),
                Err(issues) => issues,
            };
            let all = issues
                .iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect::<Vec<_>>()
                .join("\n");
            assert_eq!(
                issues.len(),
                1,
                "one problem expected for\n{yaml}\ngot\n{all}"
            );
            assert_eq!(issues[0].path, *path, "{yaml}\n{all}");
            assert!(
                issues[0].message.contains(message),
                "expected {message:?} at {path} for\n{yaml}\ngot\n{all}"
            );
        }
    }

    /// Every file in `yamls` passes.
    pub fn assert_valid(yamls: &[&str]) {
        for yaml in yamls {
            let problems = problems(settings(yaml));
            assert!(problems.is_empty(), "{yaml}\n{}", problems.join("\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testing::*;
    use super::Issues;

    /// The shared duration rule; each section's table has a row for each of its durations.
    #[test]
    fn durations_are_checked_once_for_all_sections() {
        let mut issues = Issues::default();
        let default = Duration::from_secs(7);
        assert_eq!(issues.duration("a", None, default), default);
        assert_eq!(
            issues.duration("b", Some("250ms"), default),
            Duration::from_millis(250)
        );
        assert!(issues.0.is_empty());
        assert_eq!(issues.duration("c", Some("5 minutes"), default), default);
        let [issue] = issues.0.as_slice() else {
            panic!("one problem")
        };
        assert_eq!(
            (issue.path.as_str(), issue.message.as_str()),
            ("c", "`5 minutes` is not a duration")
        );
        assert_eq!(
            issue.hint.as_deref(),
            Some("write a whole number with a unit: 250ms, 30s, 5m, 1h or 1d")
        );
        issues.add("d", "no hint", "");
        assert_eq!(issues.0[1].hint, None);
    }

    /// Problems come section by section in `validate`'s order, whatever the file's order.
    #[test]
    fn problems_come_in_section_order() {
        let yaml = "\
cache: { max_entries: 0 }
resource: { id: nowhere }
routes:
  - { path: nowhere }
default: { auth: maybe }
trusted_proxies: [nowhere]
forward: { strip_prefix: X- }
upstream: { url: \"ftp://x\" }
shutdown_timeout: soon
admin: { listen: nowhere }
tls: { cert: missing.pem, key: Cargo.toml }
limits: { max_connections: 0 }
log: { format: xml }
cors: { mode: browser }
keys: { fetch_timeout: 0s }
dev_issuer: { token_lifetime: 0s }
issuers:
  - issuer: https://idp.example.com
    audiences: []
listen: nowhere
";
        let paths: Vec<String> = problems(settings(yaml))
            .into_iter()
            .map(|p| p.split(": ").next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "listen",
                "issuers[0].audiences",
                "dev_issuer.token_lifetime",
                "keys.fetch_timeout",
                "cors.mode",
                "log.format",
                "limits.max_connections",
                "tls.cert",
                "admin.listen",
                "shutdown_timeout",
                "upstream.url",
                "forward.strip_prefix",
                "trusted_proxies[0]",
                "default.auth",
                "routes[0].path",
                "resource.id",
                "cache.max_entries",
            ]
        );
    }

    #[test]
    fn a_valid_file_gets_a_new_generation_each_time() {
        let (Ok(a), Ok(b)) = (settings(""), settings("")) else {
            panic!("the empty file is valid")
        };
        assert!(b.generation > a.generation);
        assert_eq!(a.source, std::path::PathBuf::new());
        assert_eq!(a.issuers.len(), 1);
        assert!(a.dev_issuer.is_none());
    }
}
