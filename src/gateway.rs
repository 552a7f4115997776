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
        let app = App::build(settings, None, metrics.clone())?;
        Ok(Gateway {
            app: ArcSwap::from_pointee(app),
            tls: ArcSwapOption::new(tls.map(Arc::new)),
            metrics,
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
    /// share of the descriptor budget, the log format and level) is reported, not applied.
    pub fn reload(&self, settings: Settings) -> Result<NeedsRestart, String> {
        let old = self.app.load_full();
        let mut restart = Vec::new();
        if settings.listen != old.settings().listen {
            restart.push("listen");
        }
        if settings.admin_listen != old.settings().admin_listen {
            restart.push("admin.listen");
        }
        if settings.tls.is_some() != old.settings().tls.is_some() {
            restart.push("tls (turning it on or off)");
        }
        // Sized once for the process: the connection slots and the descriptor budget.
        if settings.limits.max_connections != old.settings().limits.max_connections {
            restart.push("limits.max_connections");
        }
        let pool = |s: &Settings| s.upstream.as_ref().map(|u| u.pool_max_idle);
        if pool(&settings) != pool(old.settings()) {
            restart.push("upstream.pool_max_idle (the descriptor budget keeps its start-up size)");
        }
        // The log subscriber is installed once, at start.
        if settings.log.format != old.settings().log.format {
            restart.push("log.format");
        }
        if settings.log.level != old.settings().log.level {
            restart.push("log.level");
        }
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
