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
mod forward;
mod issuer;
mod keys;
mod limits;
mod listen;
mod log;
mod resource;
mod routes;
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
    let paths = routes::path_options(&raw.paths);
    let rules = routes::rules(
        &mut issues,
        raw.default.as_ref(),
        &raw.routes,
        paths,
        &issuers,
    );
    let resource = raw
        .resource
        .as_ref()
        .map(|r| resource::resource(&mut issues, r));
    let cache = cache::cache(&mut issues, &raw.cache);

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
        resource,
        cache,
        generation: next_generation(),
        tls,
        admin_listen,
    })
}

/// A process-wide counter: every successful load gets a new generation.
fn next_generation() -> u64 {
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
