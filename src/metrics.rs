//! Prometheus metrics (text exposition format), served on the admin listener.
//!
//! One `Metrics` lives for the whole process, across configuration reloads, so counters
//! never reset. Key and cache figures are read from their owners at scrape time.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The labels of `tokengate_requests_total`: few values each, so the series stay bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route's configured name; `-` when no route matched (the default rule,
    /// tokengate's own endpoints, a request refused before the rule lookup).
    pub route: String,
    /// The method's class, from [`method_class`].
    pub method: &'static str,
    /// The response status code.
    pub status: u16,
    /// The stable decision code (`ok`, or the refusal's reason).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    issuer: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkippedLabels {
    issuer: String,
    reason: &'static str,
}

/// The process's metrics registry (prefix `tokengate_`) and the handles that update it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    upstream_duration: Histogram,
    /// `tokengate_in_flight_requests`: requests received whose response body has not ended.
    pub in_flight: Gauge,
    /// `tokengate_open_connections`: accepted client connections not yet closed.
    pub connections: Gauge,
    /// `tokengate_dpop_replay_store_errors_total`: DPoP proofs that could not be recorded
    /// (store unreachable, too slow or full), each answered 503.
    pub dpop_store_errors: Counter,
    jwks_fetches: Family<FetchLabels, Counter>,
    keys_loaded: Family<IssuerLabels, Gauge>,
    keys_skipped: Family<SkippedLabels, Counter>,
    seconds_since_fetch: Family<IssuerLabels, Gauge<f64, AtomicU64>>,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_entries: Gauge,
    introspection_calls: Family<FetchLabels, Counter>,
    introspection_cache_hits: Family<IssuerLabels, Counter>,
    introspection_duration: Histogram,
}

/// `GET`/`HEAD` read, `OPTIONS` options, the rest write (or other), to keep label sets small.
pub fn method_class(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET | http::Method::HEAD => "read",
        http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE => {
            "write"
        }
        http::Method::OPTIONS => "options",
        _ => "other",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tokengate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route, method class, status and decision reason",
            requests.clone(),
        );
        // 50 us .. ~105 s
        let duration = Histogram::new(exponential_buckets(0.00005, 2.0, 22));
        registry.register(
            "request_duration_seconds",
            "Whole-request latency, to the response head",
            duration.clone(),
        );
        let upstream_duration = Histogram::new(exponential_buckets(0.00005, 2.0, 22));
        registry.register(
            "upstream_duration_seconds",
            "Upstream latency, to its response head",
            upstream_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            in_flight.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open",
            connections.clone(),
        );
        let dpop_store_errors = Counter::default();
        registry.register(
            "dpop_replay_store_errors",
            "DPoP proofs refused with 503 because the replay store could not record them",
            dpop_store_errors.clone(),
        );
        let jwks_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "jwks_fetches",
            "Key fetches (or key file reads) by issuer and outcome",
            jwks_fetches.clone(),
        );
        let keys_skipped = Family::<SkippedLabels, Counter>::default();
        registry.register(
            "jwks_keys_skipped",
            "JWKs skipped at a key load, by issuer and reason code (counted at every load)",
            keys_skipped.clone(),
        );
        let keys_loaded = Family::<IssuerLabels, Gauge>::default();
        registry.register("keys_loaded", "Usable keys per issuer", keys_loaded.clone());
        let seconds_since_fetch = Family::<IssuerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "seconds_since_last_good_fetch",
            "Age of each issuer's keys",
            seconds_since_fetch.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "token_cache_hits",
            "Verified-token cache hits",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "token_cache_misses",
            "Verified-token cache misses",
            cache_misses.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "token_cache_entries",
            "Verified tokens cached",
            cache_entries.clone(),
        );
        let introspection_calls = Family::<FetchLabels, Counter>::default();
        registry.register(
            "introspection_calls",
            "RFC 7662 introspection calls by issuer and outcome (active, inactive, error)",
            introspection_calls.clone(),
        );
        let introspection_cache_hits = Family::<IssuerLabels, Counter>::default();
        registry.register(
            "introspection_cache_hits",
            "Introspection answers reused from the cache, by issuer",
            introspection_cache_hits.clone(),
        );
        // 1 ms .. ~65 s
        let introspection_duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "introspection_duration_seconds",
            "Introspection call latency, to the whole answer",
            introspection_duration.clone(),
        );
        Metrics {
            introspection_calls,
            introspection_cache_hits,
            introspection_duration,
            registry,
            requests,
            duration,
            upstream_duration,
            in_flight,
            connections,
            dpop_store_errors,
            jwks_fetches,
            keys_loaded,
            keys_skipped,
            seconds_since_fetch,
            cache_hits,
            cache_misses,
            cache_entries,
        }
    }

    /// Counts one request under `labels`, once its response head is ready, and observes its
    /// latency to that head (`total`) and, if it was forwarded, the upstream's (`upstream`),
    /// in seconds.
    pub fn record_request(
        &self,
        labels: &RequestLabels,
        total: Duration,
        upstream: Option<Duration>,
    ) {
        self.requests.get_or_create(labels).inc();
        self.duration.observe(total.as_secs_f64());
        if let Some(u) = upstream {
            self.upstream_duration.observe(u.as_secs_f64());
        }
    }

    /// The exposition text, with key and cache figures brought up to date first.
    pub fn render(&self, keys: &[IssuerStatus], cache_entries: usize) -> String {
        for status in keys {
            let issuer = IssuerLabels {
                issuer: status.issuer.clone(),
            };
            self.keys_loaded
                .get_or_create(&issuer)
                .set(status.keys as i64);
            self.seconds_since_fetch
                .get_or_create(&issuer)
                .set(status.since_last_good.map_or(f64::NAN, |d| d.as_secs_f64()));
        }
        self.cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// One issuer's key state, for `/readyz` and metrics (made by the key store).
#[derive(Debug, Clone)]
pub struct IssuerStatus {
    /// The issuer as configured.
    pub issuer: String,
    /// Usable keys now (0 when none, or when they went stale).
    pub keys: usize,
    /// Successful fetches (or key file reads) since the process started.
    pub fetches_ok: u64,
    /// Failed fetches (or key file reads) since the process started.
    pub fetches_failed: u64,
    /// Since the last good fetch (or file read).
    pub since_last_good: Option<Duration>,
}

/// Counters that outlive a reload, handed to the parts that count.
#[derive(Clone, Default)]
pub struct FetchCounters {
    /// `tokengate_jwks_fetches_total{outcome="ok"}` for this issuer.
    pub ok: Counter,
    /// `tokengate_jwks_fetches_total{outcome="error"}` for this issuer.
    pub failed: Counter,
    issuer: String,
    skipped: Family<SkippedLabels, Counter>,
}

impl FetchCounters {
    /// Counts one key skipped at a load, under its stable reason code.
    pub fn key_skipped(&self, reason: &'static str) {
        self.skipped
            .get_or_create(&SkippedLabels {
                issuer: self.issuer.clone(),
                reason,
            })
            .inc();
    }
}

impl Metrics {
    /// The fetch counters of one issuer (shared with the key store).
    pub fn fetch_counters(&self, issuer: &str) -> FetchCounters {
        let counter = |outcome| {
            self.jwks_fetches.get_or_create_owned(&FetchLabels {
                issuer: issuer.to_owned(),
                outcome,
            })
        };
        FetchCounters {
            ok: counter("ok"),
            failed: counter("error"),
            issuer: issuer.to_owned(),
            skipped: self.keys_skipped.clone(),
        }
    }

    /// The verified-token cache's hit and miss counters (shared with the cache).
    pub fn cache_counters(&self) -> (Counter, Counter) {
        (self.cache_hits.clone(), self.cache_misses.clone())
    }
}

/// One issuer's introspection metrics (shared with its introspection client; they outlive a
/// reload): calls by outcome, cache hits, and call latency.
#[derive(Clone)]
pub struct IntrospectionCounters {
    issuer: String,
    calls: Family<FetchLabels, Counter>,
    hits: Counter,
    duration: Histogram,
}

impl IntrospectionCounters {
    /// Counts one call that ended with `outcome` (`active`, `inactive` or `error`) after
    /// `latency`.
    pub fn call(&self, outcome: &'static str, latency: Duration) {
        self.calls
            .get_or_create(&FetchLabels {
                issuer: self.issuer.clone(),
                outcome,
            })
            .inc();
        self.duration.observe(latency.as_secs_f64());
    }

    /// Counts one answer reused from the cache.
    pub fn hit(&self) {
        self.hits.inc();
    }

    /// Calls counted so far with `outcome` (for tests and `/metrics` readers).
    pub fn calls(&self, outcome: &'static str) -> u64 {
        self.calls
            .get_or_create(&FetchLabels {
                issuer: self.issuer.clone(),
                outcome,
            })
            .get()
    }
}

impl Metrics {
    /// The introspection metrics of one issuer.
    pub fn introspection_counters(&self, issuer: &str) -> IntrospectionCounters {
        IntrospectionCounters {
            issuer: issuer.to_owned(),
            calls: self.introspection_calls.clone(),
            hits: self
                .introspection_cache_hits
                .get_or_create_owned(&IssuerLabels {
                    issuer: issuer.to_owned(),
                }),
            duration: self.introspection_duration.clone(),
        }
    }
}
