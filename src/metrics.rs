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

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    pub ses_requests: Family<SesLabels, Counter>,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub identities: Family<VerificationLabels, Gauge>,
    pub smtp_tests: Family<OutcomeLabels, Counter>,
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
        Self {
            registry,
            ses_requests,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            identities,
            smtp_tests,
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

/// Set once the controllers' caches have synced.
pub static READY: AtomicBool = AtomicBool::new(false);

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the process ends; `refresh`
/// updates gauges computed from caches before each scrape.
pub async fn serve(
    listener: tokio::net::TcpListener,
    refresh: impl Fn() + Clone + Send + Sync + 'static,
) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let refresh = refresh.clone();
                async move {
                    refresh();
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        METRICS.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|| async {
                if READY.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
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
}
