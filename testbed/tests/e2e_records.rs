//! End to end with the real kubectl: the operator's binary installed as `kubectl-email` is the
//! plugin `kubectl email records`. Its zone-file output of a pending domain is what a DNS
//! server takes: loaded line by line into the test bed's DNS, the identity verifies, and
//! `--check` turns from exit 1 (records missing) to exit 0.

mod e2e;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn kubectl() -> Option<PathBuf> {
    let bundled = workspace().join(".tools/bin/kubectl");
    if bundled.exists() {
        return Some(bundled);
    }
    assert!(
        std::env::var_os("TESTBED_REQUIRE_KUBECTL").is_none(),
        "TESTBED_REQUIRE_KUBECTL is set but no kubectl was found; run .ci/setup-kubectl.sh"
    );
    eprintln!("SKIPPED: no .tools/bin/kubectl; run .ci/setup-kubectl.sh");
    None
}

/// `kubectl email ARGS` with the plugin on PATH; (exit code, stdout).
fn plugin(
    kubectl: &PathBuf,
    plugins: &std::path::Path,
    bed: &Bed,
    args: &[&str],
) -> (Option<i32>, String) {
    let path = format!(
        "{}:{}",
        plugins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(kubectl)
        .arg("email")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", bed.dir.path().join("kubeconfig"))
        .output()
        .expect("kubectl runs");
    assert!(
        out.stderr.is_empty() || out.status.code() != Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_email_records_prints_a_zone_a_dns_server_accepts() {
    let Some(kubectl) = kubectl() else { return };
    let plugins = tempfile::tempdir().expect("plugin dir");
    std::os::unix::fs::symlink(
        binary("email-operator"),
        plugins.path().join("kubectl-email"),
    )
    .expect("install the plugin");

    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    let ns = "billing";
    bed.namespace(ns).await;
    let mut es = settings(ns, &["employee@yourcompany.com"]);
    es["spec"]["advancedSmtp"]["smtpCredentialsSecretRef"] = json!({"name": "ses-key"});
    bed.apply::<EmailSettings>(ns, es).await;
    let mut si = identity(ns, "yourcompany-com", "yourcompany.com");
    si["spec"]["mailFromDomain"] = json!("bounce.yourcompany.com");
    bed.apply::<SenderIdentity>(ns, si).await;
    let pending = wait_records(&bed, ns, "yourcompany-com", WAIT).await;
    let wanted = pending.status.as_ref().expect("status").dns_records.len();
    assert!(wanted >= 5, "DKIM ×3, SPF, MAIL FROM: {wanted}");

    // Nothing published yet: --check says so.
    let dns = bed.env["TESTBED_DNS"].clone();
    let (code, table) = plugin(
        &kubectl,
        plugins.path(),
        &bed,
        &["records", "-n", ns, "--check", "--dns-server", &dns],
    );
    assert_eq!(code, Some(1), "{table}");
    assert!(table.starts_with("NAMESPACE"), "{table}");

    let (code, zone) = plugin(
        &kubectl,
        plugins.path(),
        &bed,
        &["records", "-n", ns, "--format", "zone"],
    );
    assert_eq!(code, Some(0), "{zone}");
    assert!(
        zone.starts_with("; SenderIdentity billing/yourcompany-com (yourcompany.com)\n"),
        "{zone}"
    );
    // Load every line into the DNS server, as a DNS team would paste it.
    let mut loaded = 0;
    for line in zone
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
    {
        let mut parts = line.splitn(5, ' ');
        let (name, ttl, class, kind, value) = (
            parts.next().expect("name"),
            parts.next().expect("ttl"),
            parts.next().expect("class"),
            parts.next().expect("type"),
            parts.next().expect("value"),
        );
        assert!(name.ends_with('.'), "absolute names: {line}");
        assert_eq!(class, "IN");
        let value = match kind {
            "TXT" => value
                .split("\" \"")
                .map(|s| s.trim_matches('"'))
                .collect::<String>(),
            _ => value.to_string(),
        };
        bed.post(
            "/dns/records",
            json!({"name": name, "type": kind, "value": value, "ttl": ttl.parse::<u32>().expect("ttl")}),
        )
        .await;
        loaded += 1;
    }
    assert_eq!(loaded, wanted, "every record still to publish, once");

    // SES verifies the domain from those records, and the operator sees them published.
    eventually(
        "yourcompany-com verified with every record published",
        WAIT,
        || sid(&bed, ns, "yourcompany-com"),
        |si| {
            let st = si.as_ref().and_then(|s| s.status.as_ref());
            st.and_then(|s| s.verification_status.as_deref()) == Some("Success")
                && st.is_some_and(|s| s.dns_records.iter().all(|r| r.published == Some(true)))
        },
    )
    .await;
    let (code, out) = plugin(
        &kubectl,
        plugins.path(),
        &bed,
        &["records", "-n", ns, "--check", "--dns-server", &dns],
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, csv) = plugin(
        &kubectl,
        plugins.path(),
        &bed,
        &["records", "-A", "--all", "--format", "csv"],
    );
    assert_eq!(code, Some(0));
    assert_eq!(csv.lines().count(), wanted + 1, "{csv}");
    let (_, pending_only) = plugin(
        &kubectl,
        plugins.path(),
        &bed,
        &["records", "-n", ns, "--format", "json"],
    );
    assert_eq!(pending_only.trim(), "[]", "nothing left to publish");

    // What a user sees in `kubectl describe`: the operator's Events of each kind, which it
    // writes as events.k8s.io/v1 and kubectl reads as core/v1.
    let describe = |kind: &str, name: &str| {
        let out = Command::new(&kubectl)
            .args(["describe", kind, name, "-n", ns])
            .env("KUBECONFIG", bed.dir.path().join("kubeconfig"))
            .output()
            .expect("kubectl describe");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let events = text
            .split_once("\nEvents:")
            .map(|(_, e)| e.to_string())
            .unwrap_or_default();
        (text, events)
    };
    let (text, events) = describe("senderidentity", "yourcompany-com");
    assert!(!events.trim_start().starts_with("<none>"), "{text}");
    for reason in ["IdentityCreated", "Ready"] {
        assert!(
            events.contains(reason),
            "{reason} in the Events of:\n{text}"
        );
    }
    assert!(
        events.contains("email-operator"),
        "From: the operator\n{text}"
    );
    eventually(
        "the EmailSettings reports its missing Secret",
        WAIT,
        || get_es(&bed, ns, "notifications"),
        |e| condition_of(e.as_ref(), "Ready").is_some_and(|(_, r, _)| r == "SecretNotFound"),
    )
    .await;
    let (text, events) = describe("emset", "notifications");
    assert!(
        events.contains("Warning") && events.contains("SecretNotFound"),
        "{text}"
    );
}

/// An address of a verified domain is verified the moment it is created, before anyone could
/// publish its records, so its first status shows its SPF record unpublished. Once the record
/// is published, the status says so within seconds: a verified identity with unpublished
/// records looks them up in DNS on a timer of its own, without reading SES.
#[tokio::test]
async fn a_record_published_after_the_identity_is_ready_shows_as_published() {
    let mut bed = Bed::up().await;
    // The domain was verified in SES by hand, before the operator.
    let created = ses_sdk(&bed)
        .create_email_identity()
        .email_identity("yourcompany.com")
        .send()
        .await
        .expect("create the domain by hand");
    let tokens = created.dkim_attributes().expect("DKIM").tokens().to_vec();
    for t in &tokens {
        bed.post(
            "/dns/records",
            json!({"name": format!("{t}._domainkey.yourcompany.com"), "type": "CNAME", "value": format!("{t}.dkim.amazonses.com")}),
        )
        .await;
    }
    eventually(
        "the domain verified in SES",
        WAIT,
        || domain_status(&bed),
        |s| s == "SUCCESS",
    )
    .await;
    bed.start_operator(FAST);
    let ns = "billing";
    tenant(&bed, ns, &["employee@yourcompany.com"]).await;

    bed.apply::<SenderIdentity>(ns, identity(ns, "employee", "employee@yourcompany.com"))
        .await;
    let ready = eventually(
        "employee Ready, its SPF record not published",
        WAIT,
        || sid(&bed, ns, "employee"),
        |si| {
            let spf = si
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.dns_records.iter().find(|r| r.purpose == "SPF"));
            condition(si, "Ready").is_some_and(|(s, _)| s == "True")
                && spf.is_some_and(|r| r.published == Some(false))
        },
    )
    .await
    .expect("the identity");
    let spf = ready
        .status
        .as_ref()
        .and_then(|s| s.dns_records.iter().find(|r| r.purpose == "SPF"))
        .cloned()
        .expect("an SPF record");
    // The bulk listing may have the new identity read once (a listing begun before it was
    // created does not show it); what follows must not need SES.
    let mut reads = bed.ses_calls("GetEmailIdentity").await;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = bed.ses_calls("GetEmailIdentity").await;
        if now == reads {
            break;
        }
        reads = now;
    }

    bed.post(
        "/dns/records",
        json!({"name": spf.name, "type": "TXT", "value": spf.value.trim_matches('"')}),
    )
    .await;
    eventually(
        "employee's SPF record shown published",
        WAIT,
        || sid(&bed, ns, "employee"),
        |si| {
            si.as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some_and(|s| s.dns_records.iter().all(|r| r.published == Some(true)))
        },
    )
    .await;
    assert_eq!(
        bed.ses_calls("GetEmailIdentity").await,
        reads,
        "DNS only: SES was not read"
    );
}

/// The SES stand-in's status of `yourcompany.com`.
async fn domain_status(bed: &Bed) -> String {
    bed.get("/ses/identities").await["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == "yourcompany.com")
        .map(|i| i["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}
