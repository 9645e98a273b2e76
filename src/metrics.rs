//! Prometheus metrics with bounded labels (operation names, stable reasons, status names —
//! never a formatted message), and the `/metrics`, `/healthz` and `/readyz` endpoints.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SesLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    pub status: String,
}

/// An EmailSettings' `Ready` condition: its status and (stable) reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    pub ready: String,
    pub reason: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    pub ses_requests: Family<SesLabels, Counter>,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub identities: Family<VerificationLabels, Gauge>,
    /// Seconds the longest-pending SenderIdentity has been pending (0 when none is).
    pub oldest_pending: Gauge,
    pub email_settings: Family<ReadyLabels, Gauge>,
    /// Seconds the longest-failing connection test has failed (0 when none fails).
    pub oldest_failing_test: Gauge,
    pub smtp_tests: Family<OutcomeLabels, Counter>,
    /// 1 while this replica holds the leader-election Lease.
    pub leader: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("email_operator");
        let ses_requests = Family::<SesLabels, Counter>::default();
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<KindLabels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let identities = Family::<VerificationLabels, Gauge>::default();
        let smtp_tests = Family::<OutcomeLabels, Counter>::default();
        let leader = Gauge::default();
        let oldest_pending = Gauge::default();
        let email_settings = Family::<ReadyLabels, Gauge>::default();
        let oldest_failing_test = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease and reconciles, else 0",
            leader.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running version (always 1)", build);
        registry.register(
            "smtp_tests",
            "SMTP connection tests by outcome (Succeeded or the failure reason)",
            smtp_tests.clone(),
        );
        registry.register(
            "ses_requests",
            "SES API requests by operation and outcome (each attempt counts)",
            ses_requests.clone(),
        );
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            reconcile_duration.clone(),
        );
        registry.register(
            "sender_identities",
            "SenderIdentities by SES verification status",
            identities.clone(),
        );
        registry.register(
            "sender_identity_oldest_pending_seconds",
            "How long the longest-pending SenderIdentity has been pending (since status.pendingSince), 0 when none is",
            oldest_pending.clone(),
        );
        registry.register(
            "email_settings",
            "EmailSettings by Ready status and reason",
            email_settings.clone(),
        );
        registry.register(
            "email_settings_oldest_failing_test_seconds",
            "How long the longest-failing connection test has failed (since ConnectionVerified turned False), 0 when none fails",
            oldest_failing_test.clone(),
        );
        Self {
            registry,
            oldest_pending,
            email_settings,
            oldest_failing_test,
            ses_requests,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            identities,
            smtp_tests,
            leader,
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Runs one reconcile of `kind`, counting it, timing it and counting its failure by the
/// error's stable reason.
pub async fn reconcile<T, E>(
    kind: &'static str,
    reason: impl Fn(&E) -> &'static str,
    run: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let labels = KindLabels { kind };
    METRICS.reconciles.get_or_create(&labels).inc();
    let started = std::time::Instant::now();
    let result = run.await;
    METRICS
        .reconcile_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        METRICS
            .reconcile_errors
            .get_or_create(&ErrorLabels {
                kind,
                reason: reason(e),
            })
            .inc();
    }
    result
}

/// Counts one SMTP connection test.
pub fn smtp_test(outcome: &'static str) {
    METRICS
        .smtp_tests
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Records one SES attempt.
pub fn ses_request(operation: &'static str, outcome: &'static str) {
    METRICS
        .ses_requests
        .get_or_create(&SesLabels { operation, outcome })
        .inc();
}

/// Set once the controllers' caches have synced (the leader).
pub static READY: AtomicBool = AtomicBool::new(false);
/// Set while a standby can read the Lease: ready to take over.
pub static STANDBY: AtomicBool = AtomicBool::new(false);

/// Whether `/readyz` answers 200: a leader whose caches synced, or a healthy standby (so a
/// rolling update of several replicas is not held up by the ones standing by).
pub fn ready() -> bool {
    READY.load(Ordering::Relaxed) || STANDBY.load(Ordering::Relaxed)
}

type Refresh = Box<dyn Fn() + Send + Sync>;
static REFRESH: std::sync::OnceLock<Refresh> = std::sync::OnceLock::new();

/// Registers what updates gauges computed from caches before each scrape (once).
pub fn on_scrape(refresh: impl Fn() + Send + Sync + 'static) {
    let _ = REFRESH.set(Box::new(refresh));
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|| async move {
                if let Some(refresh) = REFRESH.get() {
                    refresh();
                }
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    METRICS.encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|| async {
                if ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: caches not synced",
                    )
                }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_bounded_labels() {
        ses_request("GetEmailIdentity", "Success");
        ses_request("GetEmailIdentity", "SesThrottled");
        METRICS
            .reconciles
            .get_or_create(&KindLabels {
                kind: "SenderIdentity",
            })
            .inc();
        METRICS
            .reconcile_duration
            .get_or_create(&KindLabels {
                kind: "SenderIdentity",
            })
            .observe(0.02);
        let text = METRICS.encode();
        assert!(text.contains(r#"email_operator_ses_requests_total{operation="GetEmailIdentity",outcome="Success"}"#), "{text}");
        assert!(text.contains(r#"email_operator_ses_requests_total{operation="GetEmailIdentity",outcome="SesThrottled"}"#));
        assert!(text.contains(r#"email_operator_reconcile_duration_seconds_bucket{le="0.04",kind="SenderIdentity"} 1"#), "{text}");
        assert!(text.contains(r#"email_operator_reconciles_total{kind="SenderIdentity"}"#));
    }

    #[test]
    fn every_series_is_documented_in_the_monitoring_page_and_every_documented_one_exists() {
        ses_request("CreateEmailIdentity", "Success");
        smtp_test("Succeeded");
        METRICS
            .reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: "EmailSettings",
                reason: "KubernetesApiError",
            })
            .inc();
        METRICS
            .reconcile_duration
            .get_or_create(&KindLabels {
                kind: "EmailSettings",
            })
            .observe(0.01);
        METRICS
            .reconciles
            .get_or_create(&KindLabels {
                kind: "EmailSettings",
            })
            .inc();
        METRICS
            .identities
            .get_or_create(&VerificationLabels {
                status: "Success".into(),
            })
            .set(1);
        METRICS
            .email_settings
            .get_or_create(&ReadyLabels {
                ready: "True".into(),
                reason: "Published".into(),
            })
            .set(1);
        let text = METRICS.encode();
        let exposed: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(|n| n.trim_start_matches("email_operator_").to_string())
            .collect();
        let page = include_str!("../docs/operations/monitoring.md");
        let documented: std::collections::BTreeSet<String> = page
            .lines()
            .filter_map(|l| l.strip_prefix("| `email_operator_"))
            .filter_map(|l| l.split('`').next())
            .map(|n| n.trim_end_matches("_total").to_string())
            .collect();
        assert_eq!(exposed, documented, "{text}");
    }
}
