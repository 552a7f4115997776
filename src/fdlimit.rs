//! File descriptors: the open-files limit is raised at start, and one process-wide budget of
//! descriptors is shared by client connections and the upstream connections made for them.
//!
//! Every accepted client connection draws one descriptor from the budget, and so does every
//! upstream connection while a client connection keeps it or a request uses it. When the
//! budget is spent, the accept loop stops accepting (new connections wait in the kernel's
//! backlog) and a request that needs another upstream connection waits for one, up to
//! `upstream.connect_timeout`, then gets a 503. What is left outside the budget
//! ([`RESERVED`] plus the pool's idle connections) keeps the admin listener, JWKS fetches
//! and reloads working when the budget is spent.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept out of the budget: standard streams, the runtime's epoll and wake-up
/// descriptors, both listeners, up to [`ADMIN_CONNECTIONS`] admin connections, JWKS and
/// discovery fetches, and files read on reload (TLS certificates, the configuration).
pub const RESERVED: u64 = 128;

/// Admin-listener connections served at once; more wait in its backlog.
pub const ADMIN_CONNECTIONS: usize = 32;

/// The open-files limit before and after [`raise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the most the soft limit can be raised to without privileges).
    pub hard: u64,
    /// Why the soft limit could not be raised, if it could not.
    pub error: Option<String>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go does at start since 1.19: a
/// server that holds a socket per client needs far more than the 1024 systemd and most
/// shells default to, and the hard limit is what the administrator allowed.
pub fn raise() -> Raised {
    let (before, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            return Raised {
                before: 0,
                soft: 0,
                hard: 0,
                error: Some(format!("cannot read RLIMIT_NOFILE: {e}")),
            }
        }
    };
    if before >= hard {
        return Raised {
            before,
            soft: before,
            hard,
            error: None,
        };
    }
    match rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard) {
        Ok(()) => Raised {
            before,
            soft: hard,
            hard,
            error: None,
        },
        Err(e) => Raised {
            before,
            soft: before,
            hard,
            error: Some(format!("cannot raise RLIMIT_NOFILE: {e}")),
        },
    }
}

/// The current soft and hard open-files limits, if they can be read.
pub fn current() -> Option<(u64, u64)> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}

/// Descriptors in the budget under a soft limit of `soft`, with `pool_max_idle` idle pooled
/// upstream connections kept outside it. At least 2, so one client can always be served.
pub fn budget_for(soft: u64, pool_max_idle: usize) -> usize {
    let kept = RESERVED.saturating_add(pool_max_idle as u64);
    usize::try_from(soft.saturating_sub(kept))
        .unwrap_or(usize::MAX)
        .max(2)
}

/// Client connections that can each keep an upstream connection under a soft limit of
/// `soft`: what `max_connections` should not exceed.
pub fn connections_for(soft: u64, pool_max_idle: usize) -> usize {
    budget_for(soft, pool_max_idle) / 2
}

/// The process-wide budget, sized from the soft limit when first asked for (after
/// [`raise`]); `pool_max_idle` only counts on that first call.
pub fn budget(pool_max_idle: usize) -> Arc<Semaphore> {
    static BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();
    BUDGET
        .get_or_init(|| {
            // An unreadable limit: assume the common default rather than none at all.
            let soft = current().map_or(1024, |(soft, _)| soft);
            let size = budget_for(soft, pool_max_idle).min(Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(size))
        })
        .clone()
}

/// One descriptor for an upstream connection, waiting up to `wait` for one to be free.
pub async fn for_upstream(wait: Duration) -> Option<OwnedSemaphorePermit> {
    let budget = budget(0);
    tokio::time::timeout(wait, budget.acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_the_reserve_and_the_idle_pool_out() {
        assert_eq!(budget_for(1024, 32), 1024 - 128 - 32);
        assert_eq!(connections_for(1024, 32), (1024 - 128 - 32) / 2);
        assert_eq!(budget_for(100, 32), 2, "one client can always be served");
        assert!(budget_for(u64::MAX, 0) > 1_000_000);
    }
}
