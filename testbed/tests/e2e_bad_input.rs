//! End to end: the bad-input corpus (`tests/fixtures/invalid/`, the same files `email-operator
//! plan` is tested with in `tests/plan_cli.rs`) applied to a working tenant on the test bed
//! with the real `email-operator run`. Every bad object must be refused — at admission (422
//! Invalid, or 400 for an unknown field under strict field validation, naming the field or
//! rule) or in its status (Accepted=False / Ready=False with the expected reason and message) —
//! and none of them may change an SES identity, its tags, or a published Secret.
//!
//! How a fixture is applied (its last document is the bad object; the ones before it are
//! context, see `each_invalid_fixture_rejects_only_its_last_object` in `tests/plan_cli.rs`):
//! * the namespace becomes the tenant's;
//! * context objects named like a working object must describe it (a subset of its spec) and
//!   are not applied: the working object stands in for them. Other context EmailSettings are
//!   applied; other context SenderIdentities are not (they would create SES identities), so the
//!   cluster's context differs from the plan's and the fixture says what happens instead on a
//!   `# live: Reason: fragment` line;
//! * a bad object the plan calls `Invalid` is applied twice — as a new object, and as an edit
//!   of each working object of its kind (the GitOps case: a broken commit to a working
//!   manifest) — and both must fail at admission;
//! * any other bad object is applied under the fixture's file name and must get its reason in
//!   a status condition.
//!
//! Then bad edits of working objects are applied one at a time: explicit `null`s for required
//! blocks must be refused at admission; the ones admission cannot judge (a dangling or wrong
//! `emailSettingsRef`, a mistyped active user) must be reported in status while the published
//! Secrets and SES stay exactly as they were, and reverting must make the object Ready again.

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{PASSWORD, USER, cert_dir, smtp_server};

const NS: &str = "bad-input";
const SES_ACCESS_KEY_ID: &str = "AKIAE2EBADINPUT00001";
const SES_SECRET_KEY: &str = "e2e/BadInputSecretAccessKey+0123456789abcd";
/// The working SenderIdentities besides the domain: they fill the three email slots.
const EMAILS: [(&str, &str); 3] = [
    ("alerts-ops", "alerts@ops.yourcompany.com"),
    ("noreply-ops", "noreply@ops.yourcompany.com"),
    ("support-ops", "support@ops.yourcompany.com"),
];
/// The published Secrets that no bad input may touch.
const PUBLISHED: [&str; 2] = ["notifications-smtp", "alerts-smtp"];

/// One file of the corpus.
struct Fixture {
    stem: String,
    /// `(reason, fragment)` from `# expect:`, or from `# live:` where the cluster's context
    /// differs from the plan's.
    expect: (String, String),
    has_live_line: bool,
    docs: Vec<Value>,
}

fn corpus() -> Vec<Fixture> {
    let dir = workspace().join("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|f| fixture(f)).collect()
}

fn split_expectation(line: &str) -> (String, String) {
    let (reason, fragment) = line.split_once(": ").unwrap_or((line, ""));
    (reason.to_string(), fragment.to_string())
}

fn fixture(file: &Path) -> Fixture {
    let text = std::fs::read_to_string(file).expect("read fixture");
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("file name")
        .to_string();
    let mut lines = text.lines();
    let expect = lines
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{stem} has no expect line"));
    let live = lines.next().and_then(|l| l.strip_prefix("# live: "));
    let docs = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).expect("fixture YAML"))
        .filter(|d| d.is_object())
        .collect();
    Fixture {
        expect: split_expectation(live.unwrap_or(expect)),
        has_live_line: live.is_some(),
        stem,
        docs,
    }
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().expect("kind")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().expect("name")
}

/// True when every field of `part` is in `whole` with the same value.
fn is_subset(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| is_subset(v, wv))),
        _ => part == whole,
    }
}

fn resource(kind: &str) -> ApiResource {
    match kind {
        "EmailSettings" => ApiResource::erase::<EmailSettings>(&()),
        "SenderIdentity" => ApiResource::erase::<SenderIdentity>(&()),
        other => panic!("the corpus holds only our kinds, not {other}"),
    }
}

/// Server-side apply as a GitOps tool does it: the same field manager as the working objects
/// (so fields the new manifest drops are removed) and strict field validation.
async fn apply(bed: &Bed, mut doc: Value, name: &str) -> Result<(), kube::core::Status> {
    doc["metadata"]["namespace"] = json!(NS);
    doc["metadata"]["name"] = json!(name);
    let api: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), NS, &resource(kind(&doc)));
    let params = PatchParams::apply("e2e").force().validation_strict();
    match api.patch(name, &params, &Patch::Apply(&doc)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(*status),
        Err(e) => panic!("apply {name}: {e}"),
    }
}

async fn es(bed: &Bed, name: &str) -> Option<EmailSettings> {
    get_es(bed, NS, name).await
}

/// Waits until the current generation of an EmailSettings is published.
async fn wait_es_ready(bed: &Bed, name: &str) -> EmailSettings {
    let current = |e: &EmailSettings| {
        e.status.as_ref().and_then(|s| s.observed_generation) == e.metadata.generation
    };
    eventually(
        &format!("EmailSettings {name} Ready=True"),
        WAIT,
        || es(bed, name),
        |e| {
            e.as_ref().is_some_and(current)
                && condition_of(e.as_ref(), "Ready")
                    .is_some_and(|(s, r, _)| s == "True" && r == "Published")
        },
    )
    .await
    .expect("exists")
}

async fn put_secret(bed: &Bed, ns: &str, name: &str, data: Value) {
    bed.apply::<Secret>(
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data}),
    )
    .await;
}

/// What must not change: each Secret's data, annotations and resourceVersion.
async fn published(bed: &Bed) -> BTreeMap<String, Value> {
    let api = Api::<Secret>::namespaced(bed.client.clone(), NS);
    let mut out = BTreeMap::new();
    for name in PUBLISHED {
        let s = api.get(name).await.expect("published Secret");
        out.insert(
            name.to_string(),
            json!({"data": s.data, "annotations": s.metadata.annotations,
                   "resourceVersion": s.metadata.resource_version}),
        );
    }
    out
}

/// SES calls that change something (everything but Get* and List*), by operation.
async fn ses_writes(bed: &Bed) -> BTreeMap<String, u64> {
    let calls = bed.get("/ses/calls").await;
    calls["calls"]
        .as_object()
        .expect("calls")
        .iter()
        .filter(|(op, _)| !op.starts_with("Get") && !op.starts_with("List"))
        .map(|(op, outcomes)| {
            let n = outcomes
                .as_object()
                .map_or(0, |o| o.values().filter_map(Value::as_u64).sum());
            (op.clone(), n)
        })
        .collect()
}

/// What no bad input may change.
struct Snapshot {
    secrets: BTreeMap<String, Value>,
    ses: Vec<Value>,
    ses_writes: BTreeMap<String, u64>,
}

async fn snapshot(bed: &Bed) -> Snapshot {
    Snapshot {
        secrets: published(bed).await,
        ses: ses_state(bed).await,
        ses_writes: ses_writes(bed).await,
    }
}

fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    let by_name = |ids: &[Value]| -> BTreeMap<String, Value> {
        ids.iter()
            .map(|i| (format!("{}/{}", i["region"], i["name"]), i.clone()))
            .collect()
    };
    let (b, a) = (by_name(&before.ses), by_name(&after.ses));
    assert_eq!(
        b.keys().collect::<Vec<_>>(),
        a.keys().collect::<Vec<_>>(),
        "{what}: the set of SES identities changed"
    );
    for (id, old) in &b {
        let new = &a[id];
        let changed: Vec<String> = old
            .as_object()
            .expect("identity")
            .iter()
            .filter(|(k, v)| new.get(k.as_str()) != Some(v))
            .map(|(k, v)| format!("{k}: {v} -> {}", new[k.as_str()]))
            .collect();
        assert!(
            changed.is_empty(),
            "{what}: SES identity {id} changed: {changed:?}"
        );
    }
    assert_eq!(
        after.ses_writes, before.ses_writes,
        "{what}: SES was written to"
    );
    assert_eq!(
        after.secrets, before.secrets,
        "{what}: a published Secret changed"
    );
}

/// Waits until every working object is back to its working state.
async fn wait_working(bed: &Bed) {
    wait_es_ready(bed, "notifications").await;
    wait_es_ready(bed, "alerts").await;
    wait_condition(bed, NS, "yourcompany-com", "Ready", "True", None).await;
    for (n, _) in EMAILS {
        wait_condition(bed, NS, n, "Accepted", "True", None).await;
    }
}

/// The working tenant: AdvancedSmtp `notifications` with a verified domain identity and three
/// email identities, published; Default `alerts` through the operator's relay, published.
/// Returns the working objects' manifests as applied.
async fn working_state(bed: &Bed, relay_port: u16) -> Vec<Value> {
    bed.namespace("email-system").await;
    bed.namespace(NS).await;
    let ca = std::fs::read_to_string(cert_dir().join("ca.pem")).expect("ca.pem");
    put_secret(
        bed,
        "email-system",
        "relay",
        json!({"host": "localhost", "port": relay_port.to_string(), "tls": "starttls",
               "username": USER, "password": PASSWORD, "caBundle": ca}),
    )
    .await;
    put_secret(
        bed,
        NS,
        "ses-key",
        json!({"accessKeyId": SES_ACCESS_KEY_ID, "secretAccessKey": SES_SECRET_KEY}),
    )
    .await;
    let mut notifications = settings(NS, &["employee@yourcompany.com"]);
    notifications["spec"]["advancedSmtp"]["smtpCredentialsSecretRef"] = json!({"name": "ses-key"});
    let alerts = json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "alerts", "namespace": NS},
        "spec": {"from": "alerts@yourcompany.com", "delivery": "Default"}
    });
    let domain = identity(NS, "yourcompany-com", "yourcompany.com");
    let mut working = vec![notifications, alerts, domain];
    for (name, address) in EMAILS {
        working.push(identity(NS, name, address));
    }
    for doc in &working[..3] {
        apply(bed, doc.clone(), name(doc))
            .await
            .expect("working object");
    }
    let si = wait_records(bed, NS, "yourcompany-com", WAIT).await;
    publish_dkim(bed, &si).await;
    wait_condition(bed, NS, "yourcompany-com", "Ready", "True", Some("Ready")).await;
    // In name order, one after the other: the LimitExceeded message names the holders in
    // admission order, as the plan does.
    for doc in &working[3..] {
        apply(bed, doc.clone(), name(doc))
            .await
            .expect("working object");
        wait_condition(bed, NS, name(doc), "Accepted", "True", None).await;
    }
    wait_es_ready(bed, "notifications").await;
    wait_es_ready(bed, "alerts").await;
    // creationTimestamp has one-second resolution and ties are broken by name: without this a
    // corpus object created in the same second as a slot holder with a later name (as
    // `fourth-email-identity` and `support-ops`) would be older by the rules, and take its slot.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    working
}

/// The test bed with the operator (default relay and SES SMTP endpoint on aiosmtpd) and the
/// working tenant; `None` (the test is skipped) where the SMTP test servers are not installed.
async fn working_bed() -> Option<(Bed, Vec<Value>, [support::Server; 2])> {
    let relay = smtp_server("starttls-auth", &[])?;
    let ses_password =
        email_operator::smtp::ses_password::smtp_password(SES_SECRET_KEY, "us-east-1");
    let ses_smtp = smtp_server(
        "starttls-auth",
        &["--user", SES_ACCESS_KEY_ID, "--password", &ses_password],
    )?;
    let mut bed = Bed::up().await;
    let flags = fast_with_ses_smtp(ses_smtp.port, &cert_dir().join("ca.pem"));
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "--default-relay-secret",
        "email-system/relay",
        "--default-relay-namespaces",
        NS,
    ]);
    bed.start_operator(&args);
    let working = working_state(&bed, relay.port).await;
    Some((bed, working, [relay, ses_smtp]))
}

#[tokio::test]
async fn the_bad_input_corpus_is_refused_and_changes_nothing() {
    let started = std::time::Instant::now();
    let Some((bed, working, servers)) = working_bed().await else {
        return;
    };
    let relay_port = servers[0].port;
    let before = snapshot(&bed).await;
    assert_eq!(before.ses.len(), 4, "{:?}", before.ses);
    let generations_before = generations(&bed, &working).await;
    eprintln!("working state after {:?}", started.elapsed());

    let corpus = corpus();
    assert!(corpus.len() >= 45, "the corpus has {} files", corpus.len());
    let applied = apply_corpus(&bed, &corpus, &working).await;
    eprintln!(
        "{} files applied, {} to judge in status, after {:?}",
        corpus.len(),
        applied.in_status.len(),
        started.elapsed()
    );
    for (stem, kind, (reason, fragment)) in &applied.in_status {
        wait_rejected(&bed, kind, stem, reason, fragment).await;
    }

    // The rule the plan cannot show (it only sees creations): an identity cannot be changed.
    let mut moved = working_object(&working, "SenderIdentity", "yourcompany-com").clone();
    moved["spec"]["identity"] = json!("en.yourcompany.com");
    let status = apply(&bed, moved, "yourcompany-com")
        .await
        .expect_err("identity is immutable");
    assert_eq!(status.code, 422, "{}", status.message);
    assert!(
        status
            .message
            .contains("spec.identity: Invalid value: \"string\": identity is immutable"),
        "{}",
        status.message
    );

    // Nothing changed; a short pause lets late reconciles land first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_unchanged(&before, &snapshot(&bed).await, "the corpus");
    assert_eq!(generations(&bed, &working).await, generations_before);
    wait_working(&bed).await;

    // Deleting what the corpus created (rejected identities have never been in SES) changes
    // nothing either, and leaves the working objects alone for the edits below.
    for (k, n) in &applied.created {
        let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), NS, &resource(k));
        api.delete(n, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("delete {k} {n}: {e}"));
    }
    for (k, n) in &applied.created {
        let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), NS, &resource(k));
        eventually(
            &format!("{k} {n} deleted"),
            WAIT,
            || async { api.get_opt(n).await.expect("get") },
            Option::is_none,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_unchanged(&before, &snapshot(&bed).await, "deleting the corpus");
    eprintln!("corpus checked after {:?}", started.elapsed());

    admitted_bad_edits(&bed, &working, relay_port).await;
    let after = snapshot(&bed).await;
    assert_eq!(
        after.ses, before.ses,
        "the bad edits changed SES identities"
    );
    assert_eq!(
        after.ses_writes, before.ses_writes,
        "the bad edits wrote to SES"
    );
    eprintln!("done after {:?}", started.elapsed());
}

fn working_object<'a>(working: &'a [Value], kind: &str, name: &str) -> &'a Value {
    working
        .iter()
        .find(|w| w["kind"] == kind && w["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no working {kind} {name}"))
}

async fn generations(bed: &Bed, working: &[Value]) -> Vec<Option<i64>> {
    let mut out = vec![];
    for doc in working {
        let api: Api<DynamicObject> =
            Api::namespaced_with(bed.client.clone(), NS, &resource(kind(doc)));
        out.push(
            api.get(name(doc))
                .await
                .expect("working")
                .metadata
                .generation,
        );
    }
    out
}

/// What applying the corpus left in the cluster.
struct Applied {
    /// Bad objects whose rejection is to be seen in status: (name, kind, (reason, fragment)).
    in_status: Vec<(String, String, (String, String))>,
    /// Every object created, as (kind, name).
    created: Vec<(String, String)>,
}

/// Applies every fixture (see the module header).
async fn apply_corpus(bed: &Bed, corpus: &[Fixture], working: &[Value]) -> Applied {
    let is_working = |kind: &str, name: &str| {
        working
            .iter()
            .any(|w| w["kind"] == kind && w["metadata"]["name"] == name)
    };
    let mut context_applied: BTreeMap<String, Value> = BTreeMap::new();
    let mut in_status = vec![];
    let mut created = vec![];
    for fx in corpus {
        let (bad, context) = fx.docs.split_last().expect("a fixture has documents");
        for doc in context {
            let (k, n) = (kind(doc), name(doc));
            if is_working(k, n) {
                let w = working_object(working, k, n);
                assert!(
                    is_subset(&doc["spec"], &w["spec"]),
                    "{}: context {k} {n} is not the working object",
                    fx.stem
                );
            } else if k == "SenderIdentity" {
                assert!(
                    fx.has_live_line,
                    "{}: context SenderIdentity {n} is not in the cluster; add a `# live:` line",
                    fx.stem
                );
            } else if let Some(earlier) = context_applied.get(n) {
                assert_eq!(earlier["spec"], doc["spec"], "{}: context {n}", fx.stem);
            } else {
                apply(bed, doc.clone(), n)
                    .await
                    .unwrap_or_else(|e| panic!("{}: context {n}: {e:?}", fx.stem));
                context_applied.insert(n.to_string(), doc.clone());
                created.push((k.to_string(), n.to_string()));
            }
        }

        let (reason, fragment) = &fx.expect;
        if reason != "Invalid" {
            assert!(
                !is_working(kind(bad), &fx.stem),
                "{}: the file name is a working object's name",
                fx.stem
            );
            apply(bed, bad.clone(), &fx.stem)
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}", fx.stem));
            in_status.push((fx.stem.clone(), kind(bad).to_string(), fx.expect.clone()));
            created.push((kind(bad).to_string(), fx.stem.clone()));
            continue;
        }
        // A problem in metadata.name goes with the name; anything else is tried as a new
        // object and as an edit of each working object of its kind.
        let names: Vec<String> = if fragment.contains("metadata.name") {
            vec![name(bad).to_string()]
        } else {
            std::iter::once(fx.stem.clone())
                .chain(
                    working
                        .iter()
                        .filter(|w| w["kind"] == bad["kind"])
                        .map(|w| name(w).to_string()),
                )
                .collect()
        };
        // Strict field validation answers an unknown field like kube-apiserver: 400, not 422.
        let expected = if fragment.starts_with("unknown field") {
            (400, "BadRequest")
        } else {
            (422, "Invalid")
        };
        for n in names {
            let status = apply(bed, bad.clone(), &n)
                .await
                .err()
                .unwrap_or_else(|| panic!("{}: {} {n} was admitted", fx.stem, kind(bad)));
            assert_eq!(
                (status.code, status.reason.as_str()),
                expected,
                "{}: {} {n}: {}",
                fx.stem,
                kind(bad),
                status.message
            );
            assert!(
                status.message.contains(fragment.as_str()),
                "{}: {} {n}: {:?} lacks {fragment:?}",
                fx.stem,
                kind(bad),
                status.message
            );
        }
    }
    Applied { in_status, created }
}

/// Waits for a rejection in status: `Accepted=False` for a SenderIdentity, `Ready=False` for
/// an EmailSettings, with `reason` and `fragment` in the message.
async fn wait_rejected(bed: &Bed, kind: &str, name: &str, reason: &str, fragment: &str) {
    let fits = |c: Option<(String, String, String)>| {
        c.is_some_and(|(s, r, m)| s == "False" && r == reason && m.contains(fragment))
    };
    if kind == "SenderIdentity" {
        eventually(
            &format!("{name} Accepted=False {reason} {fragment:?}"),
            WAIT,
            || sid(bed, NS, name),
            |si| fits(condition_of(si.as_ref(), "Accepted")),
        )
        .await;
    } else {
        eventually(
            &format!("{name} Ready=False {reason} {fragment:?}"),
            WAIT,
            || es(bed, name),
            |e| fits(condition_of(e.as_ref(), "Ready")),
        )
        .await;
    }
}

/// One bad edit of a working object that admission may let through.
struct BadEdit {
    what: &'static str,
    kind: &'static str,
    name: &'static str,
    edit: fn(&mut Value, u16),
    /// The object whose status shows it (kind, name).
    shown_on: (&'static str, &'static str),
    /// The reason it shows; `None`: only `Ready=False` is asserted.
    reason: Option<&'static str>,
    /// In the condition message, or in the 422 message when admission refuses the edit.
    fragment: &'static str,
    /// Admission must refuse it (422) rather than let it through to status.
    refused: bool,
}

fn bad_edits() -> Vec<BadEdit> {
    vec![
        BadEdit {
            what: "a typo in emailSettingsRef",
            kind: "SenderIdentity",
            name: "yourcompany-com",
            edit: |d, _| d["spec"]["emailSettingsRef"]["name"] = json!("notifcations"),
            shown_on: ("SenderIdentity", "yourcompany-com"),
            reason: Some("EmailSettingsNotFound"),
            fragment: "EmailSettings notifcations does not exist",
            refused: false,
        },
        BadEdit {
            what: "emailSettingsRef to settings without SES",
            kind: "SenderIdentity",
            name: "yourcompany-com",
            edit: |d, _| d["spec"]["emailSettingsRef"]["name"] = json!("alerts"),
            shown_on: ("SenderIdentity", "yourcompany-com"),
            reason: Some("SesNotConfigured"),
            fragment: "EmailSettings alerts has no advancedSmtp settings",
            refused: false,
        },
        // Explicit nulls: the CRD's fields are not nullable, so the API server prunes a null
        // like an absent field and the required-when rules refuse the edit at admission.
        BadEdit {
            what: "externalSmtp: null",
            kind: "EmailSettings",
            name: "alerts",
            edit: |d, _| {
                d["spec"]["delivery"] = json!("ExternalSmtp");
                d["spec"]["externalSmtp"] = Value::Null;
            },
            shown_on: ("EmailSettings", "alerts"),
            reason: Some("Invalid"),
            fragment: "externalSmtp is required when delivery is ExternalSmtp",
            refused: true,
        },
        BadEdit {
            what: "passwordSecretRef: null",
            kind: "EmailSettings",
            name: "alerts",
            edit: |d, port| {
                d["spec"]["delivery"] = json!("ExternalSmtp");
                d["spec"]["externalSmtp"] = json!({
                    "host": "localhost", "port": port, "startTls": true,
                    "authentication": "UsernamePassword", "username": USER,
                    "passwordSecretRef": null,
                    "caBundleSecretRef": {"name": "relay-ca", "key": "ca.pem"}});
            },
            shown_on: ("EmailSettings", "alerts"),
            reason: None,
            fragment: "passwordSecretRef is required when authentication is UsernamePassword",
            refused: true,
        },
        // Edits of `notifications` re-judge its identities; after the revert only the
        // EmailSettings is waited for (see `a_reverted_bad_edit_readmits_the_identity`).
        BadEdit {
            what: "advancedSmtp: null",
            kind: "EmailSettings",
            name: "notifications",
            edit: |d, _| d["spec"]["advancedSmtp"] = Value::Null,
            shown_on: ("EmailSettings", "notifications"),
            reason: Some("Invalid"),
            fragment: "advancedSmtp is required when delivery is AdvancedSmtp",
            refused: true,
        },
        BadEdit {
            what: "a typo in the only active user",
            kind: "EmailSettings",
            name: "notifications",
            edit: |d, _| d["spec"]["activeUsers"] = json!(["employee@yourcompany.co"]),
            shown_on: ("SenderIdentity", "yourcompany-com"),
            reason: Some("NotAnActiveUserDomain"),
            fragment: "yourcompany.com must be the email domain of an active user",
            refused: false,
        },
    ]
}

/// Each bad edit in turn: refused at admission, or shown in status while the published
/// Secrets and SES stay as they were; then the working manifest is applied again.
async fn admitted_bad_edits(bed: &Bed, working: &[Value], relay_port: u16) {
    let ca = std::fs::read_to_string(cert_dir().join("ca.pem")).expect("ca.pem");
    put_secret(bed, NS, "relay-ca", json!({"ca.pem": ca})).await;
    for e in bad_edits() {
        let original = working_object(working, e.kind, e.name);
        let mut doc = original.clone();
        (e.edit)(&mut doc, relay_port);
        let before = snapshot(bed).await;
        let applied = apply(bed, doc, e.name).await;
        assert_eq!(
            applied.is_err(),
            e.refused,
            "{}: refused at admission?",
            e.what
        );
        if let Err(status) = applied {
            assert_eq!(status.code, 422, "{}: {}", e.what, status.message);
            assert!(
                status.message.contains(e.fragment),
                "{}: {}",
                e.what,
                status.message
            );
            continue;
        }
        let (kind, name) = e.shown_on;
        match e.reason {
            Some(reason) => wait_rejected(bed, kind, name, reason, e.fragment).await,
            None => {
                eventually(
                    &format!("{}: {name} Ready=False", e.what),
                    WAIT,
                    || es(bed, name),
                    |x| condition_of(x.as_ref(), "Ready").is_some_and(|(s, _, _)| s == "False"),
                )
                .await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_unchanged(&before, &snapshot(bed).await, e.what);
        apply(bed, original.clone(), e.name)
            .await
            .unwrap_or_else(|s| panic!("{}: revert: {s:?}", e.what));
        if e.kind == "SenderIdentity" {
            wait_condition(bed, NS, e.name, "Ready", "True", None).await;
            wait_es_ready(bed, "notifications").await;
        } else {
            wait_es_ready(bed, e.name).await;
        }
    }
}

/// Reverting a bad edit of an EmailSettings re-admits its identities: a verified identity
/// rejected by the edit is not due for an SES read afterwards (verified identities are not
/// polled), and must still get its new verdict written (a regression test).
#[tokio::test]
async fn a_reverted_bad_edit_readmits_the_identity() {
    let Some((bed, working, _servers)) = working_bed().await else {
        return;
    };
    let original = working_object(&working, "EmailSettings", "notifications").clone();
    let mut typo = original.clone();
    typo["spec"]["activeUsers"] = json!(["employee@yourcompany.co"]);
    apply(&bed, typo, "notifications").await.expect("edit");
    wait_rejected(
        &bed,
        "SenderIdentity",
        "yourcompany-com",
        "NotAnActiveUserDomain",
        "active user domains: yourcompany.co)",
    )
    .await;
    apply(&bed, original, "notifications")
        .await
        .expect("revert");
    wait_condition(&bed, NS, "yourcompany-com", "Accepted", "True", None).await;
    wait_condition(&bed, NS, "yourcompany-com", "Ready", "True", None).await;
}
