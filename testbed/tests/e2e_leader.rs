//! End to end: leader election, readiness, metrics and graceful shutdown of the real
//! `email-operator run` on `testbed up`. Two replicas: exactly one reconciles; SIGKILL hands
//! over within the lease duration; SIGTERM releases the Lease at once and exits 0.

mod e2e;

use e2e::*;
use email_operator::crd::EmailSettings;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use std::time::Duration;

const LEASE: &[&str] = &[
    "--leader-election-namespace",
    "email-system",
    "--lease-duration",
    "4s",
    "--lease-renew-deadline",
    "3s",
    "--lease-retry-period",
    "1s",
];

async fn holder(bed: &Bed) -> Option<String> {
    Api::<Lease>::namespaced(bed.client.clone(), "email-system")
        .get_opt("email-operator")
        .await
        .expect("get lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// The identity an operator logged when it took the Lease.
fn identity_in(log: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "acquired the Lease: leading")
        .and_then(|v| v["fields"]["identity"].as_str().map(str::to_string))
}

async fn metrics(bed: &Bed, addr: &str) -> String {
    bed.http_get(&format!("http://{addr}/metrics")).await.1
}

fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn default_settings(ns: &str) -> serde_json::Value {
    json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
           "metadata": {"name": "notifications", "namespace": ns},
           "spec": {"from": "billing@yourcompany.com"}})
}

async fn reconciled(bed: &Bed, ns: &str) -> EmailSettings {
    eventually(
        &format!("{ns}/notifications reconciled"),
        WAIT,
        || async {
            Api::<EmailSettings>::namespaced(bed.client.clone(), ns)
                .get_opt("notifications")
                .await
                .expect("get")
        },
        |es| es.as_ref().and_then(|e| e.status.as_ref()).is_some(),
    )
    .await
    .expect("exists")
}

#[tokio::test]
async fn one_replica_leads_and_a_standby_takes_over() {
    let mut bed = Bed::up().await;
    bed.namespace("email-system").await;
    let first = bed.start_operator(LEASE);
    let leader = eventually("a leader", WAIT, || holder(&bed), Option::is_some)
        .await
        .expect("holder");
    eventually(
        "the leader's log line",
        WAIT,
        || async { identity_in(&first) },
        |id| id.as_deref() == Some(leader.as_str()),
    )
    .await;
    let second = bed.start_operator(LEASE);
    let (first_addr, second_addr) = (
        Bed::metrics_addr(&first).await,
        Bed::metrics_addr(&second).await,
    );

    // The standby is healthy and ready (it would take over), but does not reconcile.
    eventually(
        "the standby standing by",
        WAIT,
        || async { std::fs::read_to_string(&second).unwrap_or_default() },
        |log| log.contains("another replica leads: standing by"),
    )
    .await;
    assert_eq!(
        bed.http_get(&format!("http://{second_addr}/readyz"))
            .await
            .0,
        200
    );
    bed.namespace("billing").await;
    bed.apply::<EmailSettings>("billing", default_settings("billing"))
        .await;
    reconciled(&bed, "billing").await;
    let (lead, standby) = (
        metrics(&bed, &first_addr).await,
        metrics(&bed, &second_addr).await,
    );
    assert_eq!(series(&lead, "email_operator_leader"), 1.0, "{lead}");
    assert_eq!(series(&standby, "email_operator_leader"), 0.0, "{standby}");
    assert!(series(&lead, "email_operator_reconciles_total") >= 1.0);
    assert_eq!(
        series(&standby, "email_operator_reconciles_total"),
        0.0,
        "{standby}"
    );
    assert_eq!(holder(&bed).await.as_deref(), Some(leader.as_str()));

    // SIGKILL: no release; the standby takes over once the lease duration (4 s) has passed
    // without a renewal, and reconciles.
    assert_eq!(bed.signal_operator(0, "KILL"), None);
    let next = eventually(
        "the standby to take over within the lease duration",
        Duration::from_secs(4 + 3),
        || holder(&bed),
        |h| h.as_ref().is_some_and(|h| *h != leader),
    )
    .await
    .expect("holder");
    eventually(
        "the new leader's log line",
        WAIT,
        || async { identity_in(&second) },
        |id| id.as_deref() == Some(next.as_str()),
    )
    .await;
    bed.namespace("support").await;
    bed.apply::<EmailSettings>("support", default_settings("support"))
        .await;
    reconciled(&bed, "support").await;
    assert_eq!(
        series(&metrics(&bed, &second_addr).await, "email_operator_leader"),
        1.0
    );

    // SIGTERM: finish, release the Lease at once, exit 0.
    assert_eq!(bed.signal_operator(1, "TERM"), Some(0));
    assert_eq!(holder(&bed).await, None, "released on the way out");
    let log = std::fs::read_to_string(&second).expect("log");
    assert!(log.contains("released the Lease"), "{log}");
}

#[tokio::test]
async fn a_replica_is_not_ready_before_its_caches_sync() {
    let mut bed = Bed::up().await;
    // Without the EmailSettings CRD the watch cannot list, so the caches never sync.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(bed.client.clone());
    crds.delete("emailsettings.email.ops.dev", &Default::default())
        .await
        .expect("delete CRD");
    let log = bed.start_operator(&[]);
    let addr = Bed::metrics_addr(&log).await;
    eventually(
        "the operator to lead",
        WAIT,
        || async { std::fs::read_to_string(&log).unwrap_or_default() },
        |l| l.contains("acquired the Lease"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bed.http_get(&format!("http://{addr}/healthz")).await.0, 200);
    let (code, body) = bed.http_get(&format!("http://{addr}/readyz")).await;
    assert_eq!((code, body.as_str()), (503, "not ready: caches not synced"));

    // The CRD comes back: the caches sync and the replica is ready.
    let yaml = std::fs::read_to_string(workspace().join("crds/emailsettings.yaml")).expect("crd");
    let crd = serde_saphyr::from_str(&yaml).expect("crd yaml");
    crds.create(&Default::default(), &crd)
        .await
        .expect("create CRD");
    let readyz = format!("http://{addr}/readyz");
    eventually(
        "ready once the caches sync",
        WAIT,
        || bed.http_get(&readyz),
        |(code, _)| *code == 200,
    )
    .await;

    let text = metrics(&bed, &addr).await;
    assert_eq!(series(&text, "email_operator_leader"), 1.0, "{text}");
    assert!(
        text.contains("email_operator_build_info{version="),
        "{text}"
    );
}
