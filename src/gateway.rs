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

    pub fn app(&self) -> Arc<App> {
        self.app.load_full()
    }

    pub fn tls(&self) -> Option<Arc<TlsAcceptor>> {
        self.tls.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Swaps in a new configuration (already validated). TLS files are read again. Settings
    /// that belong to the sockets (listen addresses, TLS on or off) are reported, not applied.
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
