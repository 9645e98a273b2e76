//! End to end: the SES account's standing (GetAccount) in AdvancedSmtp EmailSettings' status,
//! with the real `email-operator run` against `testbed up`. The region starts in the sandbox
//! (a warning; mail still leaves), production access granted through the control API clears
//! it with no SES call but the scheduled GetAccount, and a shut-down account stops Ready while
//! the published Secret stays. GetAccount is read once per location per interval, however many
//! EmailSettings use the location. Connection tests go to the test bed's SES SMTP stand-in.

mod e2e;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;
use std::time::Duration;

const SES_ACCESS_KEY_ID: &str = "AKIAE2ETESTKEY000002";
const SES_SECRET_KEY: &str = "e2e/SesAccountSecretKey+0123456789abcdefXYZ";
/// The operator's `--ses-account-interval` here (12 h in production).
const INTERVAL: Duration = Duration::from_secs(4);

async fn wait_es(bed: &Bed, ns: &str, t: &str, status: &str, reason: &str) -> EmailSettings {
    eventually(
        &format!("EmailSettings {ns}/notifications {t}={status} ({reason})"),
        WAIT,
        || get_es(bed, ns, "notifications"),
        |e| condition(e, t).is_some_and(|(s, r)| s == status && r == reason),
    )
    .await
    .expect("exists")
}

/// Every SES operation called since the counters were reset, but GetAccount.
fn other_calls(calls: &serde_json::Value) -> Vec<String> {
    calls
        .as_object()
        .map(|ops| {
            ops.keys()
                .filter(|op| *op != "GetAccount" && count(calls, op, None) > 0)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_account_standing_is_shown_shared_and_followed() {
    let mut bed = Bed::up().await;
    bed.register_ses_smtp_key(SES_ACCESS_KEY_ID, SES_SECRET_KEY)
        .await;
    bed.sandbox("us-east-1").await;
    // Pending identities are polled fast; verified ones and the account keep long periods, so
    // that once Ready nothing but the account's own reads calls SES.
    let interval = format!("{}s", INTERVAL.as_secs());
    let mut args: Vec<String> = fast_with_bed_ses_smtp(&bed);
    let at = args
        .iter()
        .position(|a| a == "--verified-recheck-interval")
        .expect("flag");
    args[at + 1] = "12h".into();
    args.extend(["--ses-account-interval".into(), interval]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bed.start_operator(&args);

    let namespaces = ["billing", "shop", "support"];
    for ns in namespaces {
        bed.namespace(ns).await;
        bed.apply::<Secret>(
            ns,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ses-key", "namespace": ns},
                   "stringData": {"accessKeyId": SES_ACCESS_KEY_ID, "secretAccessKey": SES_SECRET_KEY}}),
        )
        .await;
        let mut es = settings(ns, &["employee@yourcompany.com"]);
        es["spec"]["advancedSmtp"]["smtpCredentialsSecretRef"] = json!({"name": "ses-key"});
        bed.apply::<EmailSettings>(ns, es).await;
    }
    bed.apply::<SenderIdentity>(
        "billing",
        identity("billing", "yourcompany-com", "yourcompany.com"),
    )
    .await;
    let si = wait_records(&bed, "billing", "yourcompany-com", WAIT).await;
    publish_dkim(&bed, &si).await;

    // The sandbox: a warning that says what it limits and how to leave it; mail still leaves.
    let sandboxed = wait_es(&bed, "billing", "SesAccountHealthy", "False", "SesSandbox").await;
    let ready = wait_es(&bed, "billing", "Ready", "True", "Published").await;
    let message = condition_of(Some(&sandboxed), "SesAccountHealthy")
        .expect("condition")
        .2;
    for says in [
        "sandbox",
        "verified addresses",
        "mailbox simulator",
        "200 messages",
        "production access",
    ] {
        assert!(message.contains(says), "{says}: {message}");
    }
    let shown = ready
        .status
        .as_ref()
        .and_then(|s| s.ses_account.clone())
        .expect("sesAccount");
    assert_eq!(
        (
            shown.region.as_str(),
            shown.production_access,
            shown.sending_enabled,
            shown.enforcement_status.as_str(),
            shown.max24_hour_send,
            shown.max_send_rate
        ),
        ("us-east-1", false, true, "HEALTHY", 200, 1)
    );
    for ns in namespaces {
        wait_es(&bed, ns, "SesAccountHealthy", "False", "SesSandbox").await;
    }

    // One GetAccount per interval for the three EmailSettings of the location (a reader per
    // EmailSettings would make three).
    bed.delete("/ses/calls", json!({})).await;
    let window = INTERVAL * 3;
    tokio::time::sleep(window).await;
    let reads = bed.ses_calls("GetAccount").await;
    let most = (window.as_secs() / INTERVAL.as_secs()) + 1;
    assert!(
        (1..=most).contains(&reads),
        "{reads} GetAccount calls in {window:?} at one per {INTERVAL:?} (at most {most})"
    );

    // Production access granted: the warning clears at the next scheduled read, and nothing
    // else is asked of SES.
    bed.delete("/ses/calls", json!({})).await;
    bed.put(
        "/ses/account",
        json!({"region": "us-east-1", "productionAccessEnabled": true}),
    )
    .await;
    for ns in namespaces {
        wait_es(
            &bed,
            ns,
            "SesAccountHealthy",
            "True",
            "SesAccountInGoodStanding",
        )
        .await;
    }
    let granted = get_es(&bed, "billing", "notifications")
        .await
        .expect("exists");
    let shown = granted
        .status
        .and_then(|s| s.ses_account)
        .expect("sesAccount");
    assert!(shown.production_access && shown.max24_hour_send == 50_000);
    let since = calls(&bed).await;
    assert!(count(&since, "GetAccount", None) >= 1);
    assert_eq!(other_calls(&since), Vec::<String>::new(), "{since}");

    // Shut down: Ready False and Stalled, saying so; the published Secret stays as it was.
    let before = Api::<Secret>::namespaced(bed.client.clone(), "billing")
        .get("notifications-smtp")
        .await
        .expect("published Secret");
    bed.put(
        "/ses/account",
        json!({"region": "us-east-1", "enforcementStatus": "SHUTDOWN"}),
    )
    .await;
    let stopped = wait_es(&bed, "billing", "Ready", "False", "SesAccountShutDown").await;
    assert_eq!(
        condition(&Some(stopped.clone()), "Stalled").map(|(_, r)| r),
        Some("SesAccountShutDown".to_string())
    );
    let message = condition_of(Some(&stopped), "Ready").expect("Ready").2;
    assert!(
        message.contains("still holds the last validated configuration"),
        "{message}"
    );
    let after = Api::<Secret>::namespaced(bed.client.clone(), "billing")
        .get("notifications-smtp")
        .await
        .expect("published Secret");
    assert_eq!(before.data, after.data, "the published configuration stays");

    // Healthy again: Ready again.
    bed.put(
        "/ses/account",
        json!({"region": "us-east-1", "enforcementStatus": "HEALTHY"}),
    )
    .await;
    wait_es(&bed, "billing", "Ready", "True", "Published").await;
}
