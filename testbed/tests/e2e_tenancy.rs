//! Tenancy end to end: the real `email-operator run` under the Helm chart's RBAC (enforced by the
//! test bed's API server, with an audit log), and each tenant acting as its own ServiceAccount
//! bound only to Kubernetes' `edit` role in its namespace (which the chart's tenant roles
//! aggregate into):
//!
//! * a tenant cannot claim, share or send as a domain another tenant verified first — refused
//!   with a reason naming the holder, before anything reaches SES, the holder's identity, tags
//!   and Secret unchanged — nor write SenderPolicies; a namespace outside the default-relay
//!   rule is refused the relay; `plan` gives the same verdicts for the same manifests;
//! * with a SenderPolicy letting `billing` and `billing-sandbox` share `yourcompany.com`, both
//!   reach Ready on one SES identity;
//! * a namespaced install (two watched namespaces, the chart rendered with Roles only)
//!   reconciles both, ignores a third, and never lists or watches anything cluster-wide.

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use e2e::chart::{self, NAMESPACE as NS, SERVICE_ACCOUNT as SA};
use e2e::tenants::{platform, tenant_apply, tenant_client};
use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity, SenderPolicy};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::{Value, json};
use std::path::PathBuf;

const USER: &str = "system:serviceaccount:email-system:email-operator";
const SES_ACCESS_KEY_ID: &str = "AKIAE2ETENANCY000001";
const SES_SECRET_KEY: &str = "e2e/TenancySecretAccessKey+0123456789abcdef";

/// A tenant's SES sending set-up: the SMTP user's Secret, an AdvancedSmtp EmailSettings sending
/// from `from` for the active user `user`, and a SenderIdentity for `identity`.
fn sending(ns: &str, from: &str, user: &str, identity: &str) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ses-smtp-user", "namespace": ns},
               "stringData": {"accessKeyId": SES_ACCESS_KEY_ID, "secretAccessKey": SES_SECRET_KEY}}),
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": "notifications", "namespace": ns},
               "spec": {"from": from, "delivery": "AdvancedSmtp", "activeUsers": [user],
                        "advancedSmtp": {"region": "us-east-1", "smtpCredentialsSecretRef": {"name": "ses-smtp-user"}}}}),
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
               "metadata": {"name": "domain", "namespace": ns},
               "spec": {"emailSettingsRef": {"name": "notifications"}, "identity": identity}}),
    ]
}

/// The operator as its ServiceAccount, testing SES SMTP against aiosmtpd (with the SMTP user's
/// derived password); None (the test is skipped) where the SMTP test servers are missing.
fn start_operator(
    bed: &mut Bed,
    kubeconfig: &std::path::Path,
    extra: &[&str],
) -> Option<(PathBuf, support::Server)> {
    let password = email_operator::smtp::ses_password::smtp_password(SES_SECRET_KEY, "us-east-1");
    let ses_smtp = support::smtp_server(
        "starttls-auth",
        &["--user", SES_ACCESS_KEY_ID, "--password", &password],
    )?;
    let flags = fast_with_ses_smtp(ses_smtp.port, &support::cert_dir().join("ca.pem"));
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(extra);
    let log = bed.start_operator_as(kubeconfig, NS, &args);
    Some((log, ses_smtp))
}

async fn es_condition(bed: &Bed, ns: &str, t: &str) -> Option<(String, String, String)> {
    condition_of(get_es(bed, ns, "notifications").await.as_ref(), t)
}

async fn wait_es(bed: &Bed, ns: &str, status: &str, reason: &str) -> EmailSettings {
    eventually(
        &format!("{ns}/notifications Ready={status} {reason}"),
        WAIT,
        || get_es(bed, ns, "notifications"),
        |es| condition_of(es.as_ref(), "Ready").is_some_and(|(s, r, _)| s == status && r == reason),
    )
    .await
    .expect("exists")
}

/// `email-operator plan` of `docs` (the same manifests the tenants applied), as JSON.
fn plan(docs: &[Value], extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_saphyr::to_string(d).expect("yaml"))
        .collect();
    std::fs::write(dir.path().join("all.yaml"), text.join("---\n")).expect("write");
    let out = std::process::Command::new(workspace().join("target/debug/email-operator"))
        .args(["plan", "-o", "json"])
        .args(extra)
        .arg(dir.path())
        .output()
        .expect("plan");
    serde_json::from_slice(&out.stdout).expect("plan JSON")
}

fn planned<'a>(report: &'a Value, kind: &str, ns: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["kind"] == kind && o["namespace"] == ns)
        .unwrap_or_else(|| panic!("no {kind} in {ns} planned: {report}"))
}

#[tokio::test]
async fn a_tenant_cannot_claim_share_or_send_as_another_tenants_domain() {
    let Some((mut bed, _, kubeconfig)) = platform(&[], &[]).await else {
        return;
    };
    let Some((log, _ses_smtp)) = start_operator(
        &mut bed,
        &kubeconfig,
        &["--default-relay-secret", "email-system/relay"],
    ) else {
        return;
    };

    // Team A verifies yourcompany.net and publishes its SES configuration.
    let team_a = tenant_client(&bed, "team-a").await;
    let a_docs = sending(
        "team-a",
        "orders@yourcompany.net",
        "employee@yourcompany.net",
        "yourcompany.net",
    );
    for doc in &a_docs {
        tenant_apply(&team_a, doc).await.expect("team A applies");
    }
    let si = wait_records(&bed, "team-a", "domain", WAIT).await;
    publish_dkim(&bed, &si).await;
    wait_condition(&bed, "team-a", "domain", "Ready", "True", None).await;
    wait_es(&bed, "team-a", "True", "Published").await;
    let a_secret = Api::<Secret>::namespaced(bed.client.clone(), "team-a")
        .get("notifications-smtp")
        .await
        .expect("team A's Secret");
    let ses_before = ses_state(&bed).await;
    let creates_before = bed.ses_calls("CreateEmailIdentity").await;
    let tags_before = bed.ses_calls("TagResource").await;

    // Team B claims the same domain, and sends as it.
    let team_b = tenant_client(&bed, "team-b").await;
    let b_docs = sending(
        "team-b",
        "billing@yourcompany.net",
        "employee@yourcompany.net",
        "yourcompany.net",
    );
    for doc in &b_docs {
        tenant_apply(&team_b, doc).await.expect("team B applies");
    }
    let refused = wait_condition(
        &bed,
        "team-b",
        "domain",
        "Accepted",
        "False",
        Some("DomainHeldByAnotherNamespace"),
    )
    .await;
    let message = condition_message(&refused, "Accepted");
    assert!(message.contains("held by namespace team-a"), "{message}");
    assert!(
        message.contains("SenderPolicy in namespace email-system"),
        "{message}"
    );
    wait_es(&bed, "team-b", "False", "DomainHeldByAnotherNamespace").await;
    assert!(
        Api::<Secret>::namespaced(bed.client.clone(), "team-b")
            .get_opt("notifications-smtp")
            .await
            .expect("get")
            .is_none(),
        "nothing published for team B"
    );
    // Team A's identity, its tags and its Secret are as they were; team B reached no SES write.
    assert_eq!(ses_state(&bed).await, ses_before);
    assert_eq!(bed.ses_calls("CreateEmailIdentity").await, creates_before);
    assert_eq!(bed.ses_calls("TagResource").await, tags_before);
    let a_after = Api::<Secret>::namespaced(bed.client.clone(), "team-a")
        .get("notifications-smtp")
        .await
        .expect("team A's Secret");
    assert_eq!(a_after.resource_version(), a_secret.resource_version());
    assert_eq!(
        es_condition(&bed, "team-a", "Ready").await.map(|c| c.0),
        Some("True".into())
    );

    // Team B cannot grant itself the domain: SenderPolicies are not the edit role's.
    let grab = json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
                      "metadata": {"name": "mine", "namespace": "team-b"},
                      "spec": {"namespaces": ["team-b"], "domains": ["yourcompany.net"], "shareIdentities": true}});
    for ns in ["team-b", NS] {
        let mut doc = grab.clone();
        doc["metadata"]["namespace"] = json!(ns);
        match tenant_apply(&team_b, &doc).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
            other => panic!("team B wrote a SenderPolicy in {ns}: {other:?}"),
        }
    }

    // A third team on the default relay, outside the relay rule.
    let marketing = tenant_client(&bed, "marketing").await;
    let relay_doc = json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
                           "metadata": {"name": "notifications", "namespace": "marketing"},
                           "spec": {"from": "news@marketing.example"}});
    tenant_apply(&marketing, &relay_doc)
        .await
        .expect("marketing applies");
    let es = wait_es(&bed, "marketing", "False", "DefaultRelayNotAllowed").await;
    let (_, _, message) = condition_of(Some(&es), "Ready").expect("Ready");
    assert!(message.contains("--default-relay-namespaces"), "{message}");

    // `plan` of the same manifests says the same.
    let mut all = a_docs.clone();
    all.extend(b_docs.clone());
    all.push(relay_doc);
    let report = plan(&all, &[]);
    assert_eq!(
        planned(&report, "SenderIdentity", "team-a")["accepted"],
        true
    );
    assert_eq!(
        planned(&report, "EmailSettings", "team-a")["accepted"],
        true
    );
    for kind in ["SenderIdentity", "EmailSettings"] {
        assert_eq!(
            planned(&report, kind, "team-b")["reason"],
            "DomainHeldByAnotherNamespace",
            "{report}"
        );
    }
    assert_eq!(
        planned(&report, "EmailSettings", "marketing")["reason"],
        "DefaultRelayNotAllowed"
    );

    // Nothing the operator asked for was refused by the chart's RBAC (but its start-up probe
    // of DNSEndpoints, which the chart grants only with externalDns.enabled).
    let refused: Vec<_> = bed
        .audit()
        .into_iter()
        .filter(|e| e["user"]["username"] == USER)
        .filter(|e| e["responseStatus"]["code"] == 403)
        .filter(|e| e["objectRef"]["resource"] != "dnsendpoints")
        .collect();
    assert!(refused.is_empty(), "{refused:#?}\n{}", log.display());
    bed.signal_operator(0, "TERM");
}

#[tokio::test]
async fn with_a_policy_billing_and_its_sandbox_share_one_ses_identity() {
    let Some((mut bed, _, kubeconfig)) = platform(&[], &[]).await else {
        return;
    };
    let policy = json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
                        "metadata": {"name": "billing", "namespace": NS},
                        "spec": {"namespaces": ["billing", "billing-sandbox"], "domains": ["yourcompany.com"],
                                 "shareIdentities": true}});
    bed.apply::<SenderPolicy>(NS, policy.clone()).await;
    let Some((_log, _ses_smtp)) = start_operator(&mut bed, &kubeconfig, &[]) else {
        return;
    };
    let mut all = vec![policy];
    for ns in ["billing", "billing-sandbox"] {
        let client = tenant_client(&bed, ns).await;
        let docs = sending(
            ns,
            "billing@yourcompany.com",
            "employee@yourcompany.com",
            "yourcompany.com",
        );
        for doc in &docs {
            tenant_apply(&client, doc).await.expect("the team applies");
        }
        all.extend(docs);
    }
    let si = wait_records(&bed, "billing", "domain", WAIT).await;
    publish_dkim(&bed, &si).await;
    for ns in ["billing", "billing-sandbox"] {
        wait_condition(&bed, ns, "domain", "Ready", "True", None).await;
        wait_es(&bed, ns, "True", "Published").await;
    }
    // One SES identity, claimed by both (the later one's create, if it raced the first, found
    // it there and shared it).
    assert_eq!(ses_identities(&bed).await, ["yourcompany.com"]);
    let tags = json!(ses_state(&bed).await).to_string();
    for ns in ["billing", "billing-sandbox"] {
        assert!(tags.contains(&format!("/{ns}/domain")), "{ns}: {tags}");
    }
    // `plan` agrees: everything accepted.
    let report = plan(&all, &[]);
    for o in report["objects"].as_array().expect("objects") {
        assert_eq!(o["accepted"], true, "{o}");
    }
    // Without shareIdentities, the sandbox would have been refused.
    let mut apart = all.clone();
    apart[0]["spec"]["shareIdentities"] = json!(false);
    let report = plan(&apart, &[]);
    assert_eq!(
        planned(&report, "SenderIdentity", "billing-sandbox")["reason"],
        "IdentitySharingNotAllowed"
    );
    bed.signal_operator(0, "TERM");
}

#[tokio::test]
async fn a_namespaced_install_reconciles_its_namespaces_and_reads_nothing_cluster_wide() {
    let values = ["--set", "watchNamespaces={team-a,team-b}"];
    let Some((mut bed, docs, kubeconfig)) = platform(&values, &["team-a", "team-b"]).await else {
        return;
    };
    assert!(
        !chart::rbac(docs.clone())
            .iter()
            .any(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == SA),
        "no ClusterRole for the operator"
    );
    // The operator with the namespaces the chart's Deployment gives it (the harness sets the
    // rest: its cluster id, the bed's DNS server, a free metrics port).
    let args: Vec<String> = chart::run_args(&docs)
        .into_iter()
        .filter(|a| a.starts_with("--watch-namespace"))
        .collect();
    assert!(
        args.contains(&"--watch-namespace=team-a,team-b".to_string()),
        "{args:?}"
    );
    let mut extra: Vec<&str> = FAST.to_vec();
    extra.extend(args.iter().map(String::as_str));
    bed.start_operator_as(&kubeconfig, NS, &extra);

    for (ns, domain) in [
        ("team-a", "yourcompany.com"),
        ("team-b", "yourcompany.net"),
        ("outside", "yourcompany.org"),
    ] {
        bed.namespace(ns).await;
        bed.apply::<EmailSettings>(
            ns,
            json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
                   "metadata": {"name": "notifications", "namespace": ns},
                   "spec": {"from": format!("billing@{domain}"), "delivery": "AdvancedSmtp",
                            "activeUsers": [format!("employee@{domain}")],
                            "advancedSmtp": {"region": "us-east-1"}}}),
        )
        .await;
        bed.apply::<SenderIdentity>(ns, identity(ns, "domain", domain))
            .await;
    }
    for ns in ["team-a", "team-b"] {
        let si = wait_records(&bed, ns, "domain", WAIT).await;
        publish_dkim(&bed, &si).await;
        wait_condition(&bed, ns, "domain", "Ready", "True", None).await;
    }
    // The namespace it does not watch is never reconciled.
    let outside = sid(&bed, "outside", "domain").await.expect("exists");
    assert!(outside.status.is_none(), "{:?}", outside.status);
    assert!(outside.finalizers().is_empty());
    assert!(
        !ses_identities(&bed)
            .await
            .contains(&"yourcompany.org".to_string())
    );

    // Every request of the operator named a namespace; none was refused.
    let requests: Vec<Value> = bed
        .audit()
        .into_iter()
        .filter(|e| e["user"]["username"] == USER && e["objectRef"].is_object())
        .collect();
    assert!(!requests.is_empty());
    let cluster_wide: Vec<_> = requests
        .iter()
        .filter(|e| {
            e["objectRef"]["namespace"]
                .as_str()
                .is_none_or(str::is_empty)
        })
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "cluster-wide requests: {cluster_wide:#?}"
    );
    let watched: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter(|e| matches!(e["verb"].as_str(), Some("list" | "watch")))
        .filter_map(|e| e["objectRef"]["namespace"].as_str())
        .collect();
    assert_eq!(
        watched,
        ["email-system", "team-a", "team-b"].into_iter().collect(),
        "listed and watched only its namespaces (and its own, for the Lease and policies)"
    );
    let refused: Vec<_> = requests
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .filter(|e| e["objectRef"]["resource"] != "dnsendpoints")
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    bed.signal_operator(0, "TERM");
}
