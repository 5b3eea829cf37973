//! Prometheus metrics (`GET /metrics`, text format). HTTP, storage and proxy metrics carry
//! CNCF Distribution's names, labels and buckets (docker/go-metrics), so that dashboards and
//! alerts written for it work unchanged; oci-storage's own are named `oci_storage_*`. The
//! metrics live in one process-wide [`Metrics`], as Prometheus clients keep them: the code
//! that counts does not need the server's state.
//!
//! Labels never carry repository names, users or addresses: their number stays fixed
//! whatever clients send, and a scrape reveals nothing about the registry's contents.

mod endpoint;
mod http;
mod storage;

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

pub use endpoint::{metrics, serve_separately};
pub use http::track_requests;
pub use storage::MeteredStorage;

/// go-metrics' HTTP duration buckets (seconds).
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

/// go-metrics' size buckets: 1 KiB to 4 GiB, doubling.
fn size_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(1024.0, 2.0, 22).expect("valid buckets")
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    /// `registry_storage_action_seconds{driver,action}`.
    pub storage_action: HistogramVec,
    pub proxy: ProxyMetrics,
    pub logins: LoginMetrics,
    pub backup: BackupMetrics,
    pub gc: GcMetrics,
    pub scrub: ScrubMetrics,
    /// `oci_storage_sendfile_bytes_total{read}`: blob bytes sent with `sendfile(2)`, `read`
    /// telling whether they came from the page cache or waited for the disk.
    sendfile: IntCounterVec,
    /// Figures read when scraped (see [`endpoint`]).
    pub gauges: ScrapedGauges,
}

/// `registry_http_*`, labelled by `handler` (the route: `manifest`, `blob`, …).
#[derive(Debug)]
pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub request_size: HistogramVec,
    pub response_size: HistogramVec,
}

/// `registry_proxy_*_total{type}`, `type` being `blob` or `manifest`, as Distribution counts
/// them: a request is served from the cache (hit) or fetched from upstream (miss).
#[derive(Debug)]
pub struct ProxyMetrics {
    pub requests: IntCounterVec,
    pub hits: IntCounterVec,
    pub misses: IntCounterVec,
    pub pulled_bytes: IntCounterVec,
    pub pushed_bytes: IntCounterVec,
    /// oci-storage's own: failed calls to upstreams.
    pub upstream_errors: IntCounter,
}

/// Logins refused.
#[derive(Debug)]
pub struct LoginMetrics {
    /// Wrong credentials.
    pub failures: IntCounter,
    /// Refused with 429 (too many failures, or too many password checks at once).
    pub throttled: IntCounter,
}

/// The backups this process ran.
#[derive(Debug)]
pub struct BackupMetrics {
    pub last_success: Gauge,
    pub duration: Gauge,
    pub bytes: IntGauge,
    pub new_bytes: IntGauge,
    pub failures: IntCounter,
}

/// The garbage collection runs this process ran.
#[derive(Debug)]
pub struct GcMetrics {
    pub last_success: Gauge,
    pub duration: Gauge,
    /// Content moved to the trash.
    pub collected_bytes: IntCounter,
    /// Trash emptied: bytes freed.
    pub reclaimed_bytes: IntCounter,
    pub failures: IntCounter,
}

/// The last scrub this process ran.
#[derive(Debug)]
pub struct ScrubMetrics {
    pub last_run: Gauge,
    pub corrupt: IntGauge,
    pub missing: IntGauge,
}

/// Gauges set from the registry's state each time the metrics are read.
#[derive(Debug)]
pub struct ScrapedGauges {
    pub storage_bytes: IntGauge,
    pub repositories: IntGauge,
    pub uploads_in_progress: IntGauge,
    pub proxy_cache_bytes: IntGauge,
    pub proxy_cache_max_bytes: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let size = size_buckets;
        let http = HttpMetrics {
            requests: r.counter_vec(
                "registry_http_requests_total",
                "Total number of HTTP requests made.",
                &["handler", "code", "method"],
            ),
            duration: r.histogram_vec(
                "registry_http_request_duration_seconds",
                "The HTTP request latencies in seconds (until the answer's headers).",
                &["handler", "method"],
                DURATION_BUCKETS.to_vec(),
            ),
            in_flight: r.gauge_vec(
                "registry_http_in_flight_requests",
                "The in-flight HTTP requests",
                &["handler"],
            ),
            request_size: r.histogram_vec(
                "registry_http_request_size_bytes",
                "The HTTP request sizes in bytes.",
                &["handler"],
                size(),
            ),
            response_size: r.histogram_vec(
                "registry_http_response_size_bytes",
                "The HTTP response sizes in bytes.",
                &["handler"],
                size(),
            ),
        };
        let storage_action = r.histogram_vec(
            "registry_storage_action_seconds",
            "The number of seconds that the storage action takes",
            &["driver", "action"],
            prometheus::DEFAULT_BUCKETS.to_vec(),
        );
        let proxy = ProxyMetrics {
            requests: r.counter_vec(
                "registry_proxy_requests_total",
                "The number of total incoming proxy request received",
                &["type"],
            ),
            hits: r.counter_vec(
                "registry_proxy_hits_total",
                "The number of total proxy request hits",
                &["type"],
            ),
            misses: r.counter_vec(
                "registry_proxy_misses_total",
                "The number of total proxy request misses",
                &["type"],
            ),
            pulled_bytes: r.counter_vec(
                "registry_proxy_pulled_bytes_total",
                "The size of total bytes pulled from the upstream",
                &["type"],
            ),
            pushed_bytes: r.counter_vec(
                "registry_proxy_pushed_bytes_total",
                "The size of total bytes pushed to the client",
                &["type"],
            ),
            upstream_errors: r.counter(
                "oci_storage_proxy_upstream_errors_total",
                "Calls to upstream registries that failed.",
            ),
        };
        // Distribution shows both types from the start, at zero.
        for kind in ["blob", "manifest"] {
            for c in [
                &proxy.requests,
                &proxy.hits,
                &proxy.misses,
                &proxy.pulled_bytes,
                &proxy.pushed_bytes,
            ] {
                c.with_label_values(&[kind]);
            }
        }
        let logins = LoginMetrics {
            failures: r.counter(
                "oci_storage_login_failures_total",
                "Logins refused for wrong credentials.",
            ),
            throttled: r.counter(
                "oci_storage_login_throttled_total",
                "Logins refused with 429: too many failed attempts, or too many password checks at once.",
            ),
        };
        let backup = BackupMetrics {
            last_success: r.gauge(
                "oci_storage_backup_last_success_timestamp_seconds",
                "When the newest complete backup snapshot was taken (Unix time); 0: none.",
            ),
            duration: r.gauge(
                "oci_storage_backup_duration_seconds",
                "How long the last backup this process ran took.",
            ),
            bytes: r.int_gauge(
                "oci_storage_backup_bytes",
                "Content bytes the newest snapshot names.",
            ),
            new_bytes: r.int_gauge(
                "oci_storage_backup_new_bytes",
                "Bytes the last backup this process ran uploaded.",
            ),
            failures: r.counter(
                "oci_storage_backup_failures_total",
                "Backups that failed in this process.",
            ),
        };
        let gc = GcMetrics {
            last_success: r.gauge(
                "oci_storage_gc_last_success_timestamp_seconds",
                "When the last garbage collection this process ran ended (Unix time); 0: none.",
            ),
            duration: r.gauge(
                "oci_storage_gc_duration_seconds",
                "How long the last garbage collection this process ran took.",
            ),
            collected_bytes: r.counter(
                "oci_storage_gc_collected_bytes_total",
                "Content bytes garbage collection moved to its trash.",
            ),
            reclaimed_bytes: r.counter(
                "oci_storage_gc_reclaimed_bytes_total",
                "Bytes freed by emptying garbage collection's trash.",
            ),
            failures: r.counter(
                "oci_storage_gc_failures_total",
                "Garbage collection runs that failed in this process.",
            ),
        };
        let scrub = ScrubMetrics {
            last_run: r.gauge(
                "oci_storage_scrub_last_run_timestamp_seconds",
                "When the last scrub this process ran ended (Unix time); 0: none.",
            ),
            corrupt: r.int_gauge(
                "oci_storage_scrub_corrupt_objects",
                "Stored objects the last scrub found damaged.",
            ),
            missing: r.int_gauge(
                "oci_storage_scrub_missing_objects",
                "Links whose content the last scrub found missing.",
            ),
        };
        let sendfile = r.counter_vec(
            "oci_storage_sendfile_bytes_total",
            "Blob bytes sent with sendfile(2), by where they were read from (page_cache: on the async workers; disk: on the blocking pool).",
            &["read"],
        );
        for read in ["page_cache", "disk"] {
            sendfile.with_label_values(&[read]);
        }
        let gauges = ScrapedGauges {
            storage_bytes: r.int_gauge(
                "oci_storage_storage_bytes",
                "Bytes of the content tags reach, shared blobs counted once (measured at most every 30 s).",
            ),
            repositories: r.int_gauge("oci_storage_repositories", "Repositories."),
            uploads_in_progress: r.int_gauge(
                "oci_storage_uploads_in_progress",
                "Upload sessions started and not yet finished or expired (all replicas).",
            ),
            proxy_cache_bytes: r.int_gauge(
                "oci_storage_proxy_cache_bytes",
                "Bytes of upstream content the pull-through cache holds.",
            ),
            proxy_cache_max_bytes: r.int_gauge(
                "oci_storage_proxy_cache_max_bytes",
                "The pull-through cache's limit (proxy.cache.maxSizeGB).",
            ),
        };
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        Self {
            registry,
            http,
            storage_action,
            proxy,
            logins,
            backup,
            gc,
            scrub,
            sendfile,
            gauges,
        }
    }

    /// `n` bytes sent with `sendfile(2)`, read from `read` (`page_cache` or `disk`).
    pub fn sendfile_bytes(&self, read: &'static str, n: usize) {
        self.sendfile.with_label_values(&[read]).inc_by(n as u64);
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("the text encoder writes to a String")
    }

    /// A backup snapshot completed (here, or found in the target at startup).
    pub fn backup_snapshot(&self, taken_at: SystemTime, bytes: u64) {
        let at = taken_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        if at > self.backup.last_success.get() {
            self.backup.last_success.set(at);
            self.backup.bytes.set(bytes as i64);
        }
    }

    /// A backup this process ran ended.
    pub fn backup_ran(&self, took: Duration, new_bytes: Option<u64>) {
        self.backup.duration.set(took.as_secs_f64());
        match new_bytes {
            Some(n) => self.backup.new_bytes.set(n as i64),
            None => self.backup.failures.inc(),
        }
    }
}

impl Metrics {
    /// A scrub ended.
    pub fn scrubbed(&self, findings: &crate::scrub::Findings) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.scrub.last_run.set(now.as_secs_f64());
        self.scrub.corrupt.set(findings.corrupt_count as i64);
        self.scrub.missing.set(findings.missing_count as i64);
    }

    /// A garbage collection run this process ran ended (`None`: it failed).
    pub fn gc_ran(&self, took: Duration, report: Option<&crate::gc::Report>) {
        self.gc.duration.set(took.as_secs_f64());
        match report {
            Some(r) => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                self.gc.last_success.set(now.as_secs_f64());
                self.gc.collected_bytes.inc_by(r.content_bytes);
                self.gc.reclaimed_bytes.inc_by(r.trash_bytes);
            }
            None => self.gc.failures.inc(),
        }
    }
}

/// Creates metrics and registers them (names are fixed here, so registering cannot fail).
#[derive(Debug)]
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.0
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::new(name, help).expect("valid metric"))
    }

    fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("valid metric"))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> HistogramVec {
        self.add(
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_names_and_process_metrics_are_exposed() {
        let m = get();
        m.http
            .requests
            .with_label_values(&["manifest", "200", "GET"])
            .inc();
        m.http
            .duration
            .with_label_values(&["manifest", "GET"])
            .observe(0.01);
        let text = m.encode();
        for name in [
            "registry_http_requests_total{code=\"200\",handler=\"manifest\",method=\"GET\"}",
            "registry_proxy_hits_total{type=\"blob\"} 0",
            "# TYPE registry_http_request_duration_seconds histogram",
            "# TYPE oci_storage_login_failures_total counter",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
