//! The drain signal: raised once, when the server stops accepting (SIGTERM, SIGINT), and
//! read by responses that would otherwise never end on their own (a `GET` answered with
//! `text/event-stream`, see `sse`). One per process, shared by every configuration a reload
//! builds.

use std::sync::Arc;

use tokio::sync::watch;

/// A flag that goes from "serving" to "draining" once and never back. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Drain(Arc<watch::Sender<bool>>);

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    /// Not draining yet.
    pub fn new() -> Drain {
        Drain(Arc::new(watch::channel(false).0))
    }

    /// Starts the drain (idempotent): every [`Drain::draining`] future resolves.
    pub fn begin(&self) {
        self.0.send_replace(true);
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the drain has begun (at once if it has).
    pub fn draining(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            // An error means the sender is gone, which only happens at process exit.
            let _ = rx.wait_for(|draining| *draining).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn begins_once_for_every_clone() {
        let drain = Drain::new();
        let clone = drain.clone();
        let waiting = tokio::spawn(clone.draining());
        assert!(!drain.is_draining());
        drain.begin();
        drain.begin();
        assert!(clone.is_draining());
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
                .await
                .is_ok()
        );
        // Already draining: resolves at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), drain.draining())
            .await
            .unwrap_or_else(|_| panic!("draining() did not resolve"));
    }
}
