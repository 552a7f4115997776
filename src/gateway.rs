//! The running configuration: one [`App`] at a time, swapped atomically on reload.
//!
//! Each request takes the current `App` when it starts and keeps it to the end, so requests
//! in flight finish under the configuration they began with. A reload keeps the keys of
//! every unchanged issuer (no refetch) and the process-wide metrics.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::config::Settings;
use crate::metrics::Metrics;

/// The current [`App`], the current TLS acceptor (when TLS is on) and the process-wide
/// metrics, shared by every listener and connection.
pub struct Gateway {
    app: ArcSwap<App>,
    tls: ArcSwapOption<TlsAcceptor>,
    metrics: Arc<Metrics>,
    /// What the process started with and keeps until a restart: every reload is compared
    /// with this (not with the previous reload's file), so a change still waiting for a
    /// restart is reported on every reload until then.
    fixed: Fixed,
}

/// The settings only a restart applies, as the process started with them.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listen: std::net::SocketAddr,
    admin_listen: Option<std::net::SocketAddr>,
    tls_on: bool,
    max_connections: usize,
    pool_max_idle: Option<usize>,
    log_format: crate::config::LogFormat,
    log_level: String,
}

impl Fixed {
    fn of(settings: &Settings) -> Fixed {
        Fixed {
            listen: settings.listen,
            admin_listen: settings.admin_listen,
            tls_on: settings.tls.is_some(),
            max_connections: settings.limits.max_connections,
            pool_max_idle: settings.upstream.as_ref().map(|u| u.pool_max_idle),
            log_format: settings.log.format,
            log_level: settings.log.level.clone(),
        }
    }

    /// The names of the settings in `new` that differ from these.
    fn changed_in(&self, new: &Fixed) -> Vec<&'static str> {
        let mut restart = Vec::new();
        if new.listen != self.listen {
            restart.push("listen");
        }
        if new.admin_listen != self.admin_listen {
            restart.push("admin.listen");
        }
        if new.tls_on != self.tls_on {
            restart.push("tls (turning it on or off)");
        }
        // Sized once for the process: the connection slots and the descriptor budget.
        if new.max_connections != self.max_connections {
            restart.push("limits.max_connections");
        }
        if new.pool_max_idle != self.pool_max_idle {
            restart.push("upstream.pool_max_idle (the descriptor budget keeps its start-up size)");
        }
        // The log subscriber is installed once, at start.
        if new.log_format != self.log_format {
            restart.push("log.format");
        }
        if new.log_level != self.log_level {
            restart.push("log.level");
        }
        restart
    }
}

/// What a reload changed that only a restart can apply.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NeedsRestart(pub Vec<&'static str>);

impl Gateway {
    /// Builds the first `App` (not yet started: call [`Gateway::start`] in a runtime).
    pub fn new(settings: Settings) -> Result<Gateway, String> {
        let metrics = Arc::new(Metrics::new());
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()?;
        let fixed = Fixed::of(&settings);
        let app = App::build(settings, None, metrics.clone())?;
        Ok(Gateway {
            app: ArcSwap::from_pointee(app),
            tls: ArcSwapOption::new(tls.map(Arc::new)),
            metrics,
            fixed,
        })
    }

    /// Starts key fetching for the current `App`.
    pub fn start(&self) {
        self.app.load().start();
    }

    /// The current `App`: a request holds on to it until it ends, across any reload.
    pub fn app(&self) -> Arc<App> {
        self.app.load_full()
    }

    /// The TLS acceptor for new connections (certificates as of the last reload); `None`
    /// when TLS is off.
    pub fn tls(&self) -> Option<Arc<TlsAcceptor>> {
        self.tls.load_full()
    }

    /// The process's metrics, the same across reloads.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Swaps in a new configuration (already validated). TLS files are read again. Every other
    /// setting applies to requests that start after the swap, and `limits.*` (but
    /// `max_connections`) to connections accepted after it; what only a restart can apply
    /// (listen addresses, TLS on or off, `limits.max_connections`, `upstream.pool_max_idle`'s
    /// share of the descriptor budget, the log format and level) is reported, not applied,
    /// on every reload until a restart.
    pub fn reload(&self, settings: Settings) -> Result<NeedsRestart, String> {
        let old = self.app.load_full();
        let restart = self.fixed.changed_in(&Fixed::of(&settings));
        let tls = match (&settings.tls, self.tls.load_full()) {
            (Some(t), Some(_)) => Some(Arc::new(crate::tls::acceptor(t)?)),
            (_, current) => current,
        };
        let app = App::build(settings, Some(&old), self.metrics.clone())?;
        app.start();
        self.tls.store(tls);
        self.app.store(Arc::new(app));
        Ok(NeedsRestart(restart))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{load_str, Overrides};

    fn settings(listen: &str) -> Settings {
        let yaml = format!(
            "listen: {listen}\nissuers:\n  - issuer: https://idp.example.com\n    audiences: [api]\n"
        );
        match load_str(Path::new("t.yaml"), &yaml, &Overrides::default()) {
            Ok(s) => s,
            Err(e) => panic!("test configuration refused: {e}"),
        }
    }

    #[tokio::test]
    async fn a_change_waiting_for_a_restart_is_reported_on_every_reload() {
        let gateway = match Gateway::new(settings("127.0.0.1:8080")) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        };
        for _ in 0..2 {
            let restart = gateway.reload(settings("127.0.0.1:9090"));
            assert_eq!(restart, Ok(NeedsRestart(vec!["listen"])));
        }
        assert_eq!(
            gateway.reload(settings("127.0.0.1:8080")),
            Ok(NeedsRestart(vec![]))
        );
    }
}
