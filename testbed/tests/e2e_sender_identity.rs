//! End to end: the real `email-operator run` against `testbed up` (Kubernetes, SES and DNS
//! stand-ins). Each test has its own test bed; SES calls are checked through the control API.

mod e2e;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use serde_json::json;

#[tokio::test]
async fn a_domain_identity_shows_its_records_and_verifies_once_they_are_published() {
    let mut bed = Bed::up().await;
    let log = bed.start_operator(FAST);
    bed.namespace("billing").await;
    bed.apply::<EmailSettings>(
        "billing",
        settings("billing", &["employee@yourcompany.com"]),
    )
    .await;
    let mut domain = identity("billing", "yourcompany-com", "yourcompany.com");
    domain["spec"]["mailFromDomain"] = json!("bounce.yourcompany.com");
    bed.apply::<SenderIdentity>("billing", domain).await;

    let si = wait_condition(&bed, "billing", "yourcompany-com", "Accepted", "True", None).await;
    // Created without a read first: the records come from the create's answer (and the
    // MAIL FROM domain is put on it).
    assert_eq!(bed.ses_calls("GetEmailIdentity").await, 0);
    assert_eq!(bed.ses_calls("CreateEmailIdentity").await, 1);
    assert_eq!(bed.ses_calls("PutEmailIdentityMailFromAttributes").await, 1);
    let st = si.status.clone().expect("status");
    assert_eq!(st.verification_status.as_deref(), Some("Pending"));
    let cnames: Vec<_> = st
        .dns_records
        .iter()
        .filter(|r| r.type_ == "CNAME")
        .collect();
    assert_eq!(cnames.len(), 3, "{:?}", st.dns_records);
    for r in &cnames {
        let token = r.name.split("._domainkey.").next().expect("token");
        assert_eq!(r.name, format!("{token}._domainkey.yourcompany.com"));
        assert_eq!(
            r.value,
            format!("{token}.dkim.amazonses.com"),
            "the signing hosted zone SES reported"
        );
        assert_eq!(r.published, Some(false));
    }
    assert!(
        st.dns_records
            .iter()
            .any(|r| r.type_ == "MX" && r.value == "10 feedback-smtp.us-east-1.amazonses.com")
    );
    assert!(
        si.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "email.ops.dev/ses-identity"))
    );

    assert_eq!(publish_dkim(&bed, &si).await, 3);
    let si = wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "Ready",
        "True",
        Some("Ready"),
    )
    .await;
    let st = si.status.expect("status");
    assert_eq!(st.verification_status.as_deref(), Some("Success"));
    assert_eq!(st.dkim_status.as_deref(), Some("Success"));
    assert!(
        st.dns_records
            .iter()
            .filter(|r| r.type_ == "CNAME")
            .all(|r| r.published == Some(true))
    );
    for t in ["Verified", "DkimVerified"] {
        assert_eq!(
            st.conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.as_str()),
            Some("True"),
            "{t}"
        );
    }
    assert_eq!(bed.ses_calls("CreateEmailIdentity").await, 1);

    // The operator's own account of it, on /metrics; /readyz once caches synced.
    let addr = Bed::metrics_addr(&log).await;
    let (code, _) = bed.http_get(&format!("http://{addr}/readyz")).await;
    assert_eq!(code, 200);
    let (code, text) = bed.http_get(&format!("http://{addr}/metrics")).await;
    assert_eq!(code, 200);
    assert!(text.contains(r#"email_operator_ses_requests_total{operation="CreateEmailIdentity",outcome="Success"} 1"#), "{text}");
    assert!(
        text.contains(r#"email_operator_sender_identities{status="Success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"email_operator_reconciles_total{kind="SenderIdentity"}"#),
        "{text}"
    );
    // The gauges the chart's alerts use: nothing pending any more, the EmailSettings counted.
    assert!(
        text.contains("\nemail_operator_sender_identity_oldest_pending_seconds 0\n"),
        "{text}"
    );
    assert!(
        text.contains("email_operator_email_settings{ready="),
        "{text}"
    );
}

#[tokio::test]
async fn rejected_identities_never_reach_ses_and_deleting_the_holder_promotes_the_next() {
    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    let ns = "policy";
    tenant(&bed, ns, &["employee@yourcompany.com"]).await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "holder", "yourcompany.com"))
        .await;
    wait_condition(&bed, ns, "holder", "Accepted", "True", None).await;
    for (name, id) in [
        ("e1", "a@en.yourcompany.com"),
        ("e2", "b@en.yourcompany.com"),
        ("e3", "c@de.yourcompany.com"),
    ] {
        bed.apply::<SenderIdentity>(ns, identity(ns, name, id))
            .await;
        wait_condition(&bed, ns, name, "Accepted", "True", None).await;
    }
    bed.apply::<SenderIdentity>(ns, identity(ns, "second-domain", "fr.yourcompany.com"))
        .await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "fourth-email", "d@en.yourcompany.com"))
        .await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "same-domain", "contact@yourcompany.com"))
        .await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "outsider", "othercompany.com"))
        .await;
    let second = wait_condition(
        &bed,
        ns,
        "second-domain",
        "Accepted",
        "False",
        Some("LimitExceeded"),
    )
    .await;
    let msg = condition_message(&second, "Accepted");
    assert!(
        msg.contains("SenderIdentity holder (yourcompany.com)"),
        "{msg}"
    );
    wait_condition(
        &bed,
        ns,
        "fourth-email",
        "Accepted",
        "False",
        Some("LimitExceeded"),
    )
    .await;
    wait_condition(
        &bed,
        ns,
        "same-domain",
        "Accepted",
        "False",
        Some("DomainConflict"),
    )
    .await;
    wait_condition(
        &bed,
        ns,
        "outsider",
        "Accepted",
        "False",
        Some("NotAnActiveUserDomain"),
    )
    .await;

    let mut in_ses = ses_identities(&bed).await;
    in_ses.sort();
    assert_eq!(
        in_ses,
        [
            "a@en.yourcompany.com",
            "b@en.yourcompany.com",
            "c@de.yourcompany.com",
            "yourcompany.com"
        ]
    );
    assert_eq!(
        bed.ses_calls("CreateEmailIdentity").await,
        4,
        "rejected identities never reach SES"
    );

    bed.delete_object::<SenderIdentity>(ns, "holder").await;
    wait_condition(&bed, ns, "second-domain", "Accepted", "True", None).await;
    eventually(
        "holder gone",
        WAIT,
        || sid(&bed, ns, "holder"),
        Option::is_none,
    )
    .await;
    let in_ses = ses_identities(&bed).await;
    assert!(
        in_ses.contains(&"fr.yourcompany.com".to_string())
            && !in_ses.contains(&"yourcompany.com".to_string()),
        "{in_ses:?}"
    );
}

#[tokio::test]
async fn an_identity_shared_by_two_namespaces_is_created_once_and_deleted_with_its_last_owner() {
    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    for ns in ["production", "sandbox", "archive"] {
        tenant(&bed, ns, &["employee@yourcompany.com"]).await;
    }
    bed.apply::<SenderIdentity>(
        "production",
        identity("production", "shared", "yourcompany.com"),
    )
    .await;
    wait_condition(&bed, "production", "shared", "Accepted", "True", None).await;
    bed.apply::<SenderIdentity>("sandbox", identity("sandbox", "shared", "yourcompany.com"))
        .await;
    let b = wait_condition(&bed, "sandbox", "shared", "Accepted", "True", None).await;
    let a = sid(&bed, "production", "shared").await.expect("a");
    assert_eq!(
        cname_values(&a),
        cname_values(&b),
        "one SES identity, the same records"
    );
    // The second namespace's create is refused (AlreadyExists): it reads and shares it.
    assert_eq!(
        bed.ses_calls_answered("CreateEmailIdentity", "Success")
            .await,
        1
    );
    assert_eq!(
        bed.ses_calls_answered("CreateEmailIdentity", "AlreadyExistsException")
            .await,
        1
    );

    bed.delete_object::<SenderIdentity>("production", "shared")
        .await;
    eventually(
        "production/shared gone",
        WAIT,
        || sid(&bed, "production", "shared"),
        Option::is_none,
    )
    .await;
    assert_eq!(
        ses_identities(&bed).await,
        ["yourcompany.com"],
        "the sandbox still uses it"
    );
    bed.delete_object::<SenderIdentity>("sandbox", "shared")
        .await;
    eventually(
        "SES identity deleted with its last owner",
        WAIT,
        || ses_identities(&bed),
        Vec::is_empty,
    )
    .await;

    let mut retained = identity("archive", "kept", "yourcompany.com");
    retained["spec"]["deletionPolicy"] = json!("Retain");
    bed.apply::<SenderIdentity>("archive", retained).await;
    wait_condition(&bed, "archive", "kept", "Accepted", "True", None).await;
    bed.delete_object::<SenderIdentity>("archive", "kept").await;
    eventually(
        "archive/kept gone",
        WAIT,
        || sid(&bed, "archive", "kept"),
        Option::is_none,
    )
    .await;
    assert_eq!(
        ses_identities(&bed).await,
        ["yourcompany.com"],
        "Retain keeps the SES identity"
    );
}

#[tokio::test]
async fn an_identity_failed_after_72_hours_is_recreated_when_retry_is_requested() {
    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    let ns = "retry";
    tenant(&bed, ns, &["employee@yourcompany.com"]).await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "slow", "yourcompany.com"))
        .await;
    let before = wait_condition(&bed, ns, "slow", "Accepted", "True", None).await;
    bed.post("/clock/advance", json!({"seconds": 72 * 3600 + 60}))
        .await;
    let failed = wait_condition(&bed, ns, "slow", "Verified", "False", Some("Failed")).await;
    assert_eq!(
        failed
            .status
            .as_ref()
            .and_then(|s| s.verification_status.as_deref()),
        Some("Failed")
    );

    let mut bumped = identity(ns, "slow", "yourcompany.com");
    bumped["metadata"]["annotations"] = json!({"email.ops.dev/retry": "1"});
    bed.apply::<SenderIdentity>(ns, bumped).await;
    let after = wait_condition(&bed, ns, "slow", "Verified", "False", Some("Pending")).await;
    assert_eq!(cname_values(&after).len(), 3);
    assert_ne!(
        cname_values(&before),
        cname_values(&after),
        "re-created with fresh DKIM tokens"
    );
    assert_eq!(bed.ses_calls("CreateEmailIdentity").await, 2);
}

#[tokio::test]
async fn external_dns_mode_owns_a_dns_endpoint_with_the_records() {
    use kube::api::{Api, DynamicObject};
    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    let ns = "extdns";
    tenant(&bed, ns, &["employee@yourcompany.com"]).await;
    let mut si = identity(ns, "yourcompany-com", "yourcompany.com");
    si["spec"]["dns"] = json!({"provider": "ExternalDNS", "includeTxtAndMx": true});
    si["spec"]["mailFromDomain"] = json!("bounce.yourcompany.com");
    bed.apply::<SenderIdentity>(ns, si).await;
    let si = wait_condition(&bed, ns, "yourcompany-com", "Accepted", "True", None).await;
    let ar = email_operator::controller::sender_identity::dns_endpoint::api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), ns, &ar);
    let ep = eventually(
        "the DNSEndpoint",
        WAIT,
        || async { api.get_opt("yourcompany-com").await.expect("get") },
        Option::is_some,
    )
    .await
    .expect("endpoint");
    let endpoints = ep.data["spec"]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status_records = si.status.as_ref().expect("status").dns_records.len();
    assert_eq!(
        endpoints.len(),
        status_records,
        "every record, TXT and MX included: {endpoints:?}"
    );
    assert_eq!(
        endpoints
            .iter()
            .filter(|e| e["recordType"] == "CNAME")
            .count(),
        3
    );
    assert!(endpoints.iter().any(|e| e["recordType"] == "MX"
        && e["targets"][0] == "10 feedback-smtp.us-east-1.amazonses.com"));
    assert_eq!(
        ep.metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].kind.as_str()),
        Some("SenderIdentity")
    );

    bed.delete_object::<SenderIdentity>(ns, "yourcompany-com")
        .await;
    eventually(
        "the DNSEndpoint garbage-collected",
        WAIT,
        || async { api.get_opt("yourcompany-com").await.expect("get") },
        Option::is_none,
    )
    .await;
}

#[tokio::test]
async fn an_identity_is_not_rejected_while_the_email_settings_cache_is_still_filling() {
    // The EmailSettings LIST is answered 3 s late, so the operator's SenderIdentity cache is
    // complete long before its EmailSettings cache (as after a restart on a busy API server).
    let mut bed = Bed::up_with(&["--slow-list", "emailsettings=3000"]).await;
    tenant(&bed, "billing", &["employee@yourcompany.com"]).await;
    bed.apply::<SenderIdentity>(
        "billing",
        identity("billing", "yourcompany-com", "yourcompany.com"),
    )
    .await;
    bed.start_operator(FAST);
    let si = wait_condition(&bed, "billing", "yourcompany-com", "Accepted", "True", None).await;
    assert_eq!(cname_values(&si).len(), 3);

    // It was never told its EmailSettings does not exist: no such status, so no such Event.
    let events =
        kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(bed.client.clone(), "billing")
            .list(&Default::default())
            .await
            .expect("events");
    let seen: Vec<(String, String)> = events
        .items
        .iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.name.as_deref() == Some("yourcompany-com"))
        })
        .map(|e| {
            let (type_, reason) = (e.type_.clone(), e.reason.clone());
            (type_.unwrap_or_default(), reason.unwrap_or_default())
        })
        .collect();
    assert!(
        seen.iter().any(|(_, r)| r == "IdentityCreated"),
        "the operator published its Events: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(t, r)| t == "Normal" && r != "EmailSettingsNotFound"),
        "no warning, no EmailSettingsNotFound: {seen:?}"
    );
    assert_eq!(bed.ses_calls("CreateEmailIdentity").await, 1);
}
