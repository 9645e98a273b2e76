//! End to end: the EmailSettings controller of the real `email-operator run` against
//! `testbed up`, testing connections to real aiosmtpd servers (and oauth2-mock-server):
//! only validated configurations are published, a broken edit or rotation leaves the last
//! validated Secret byte for byte, AdvancedSmtp waits for a verified sender, a region move lets
//! the old SES identities go only once the new location's configuration is published, and no
//! secret reaches the log (at `debug` for every target), Events or status.

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use e2e::*;

/// Every library's log at `debug`: the secrets search sees whatever any of them writes.
const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];
use email_operator::crd::{EmailSettings, SenderIdentity};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};
use support::{PASSWORD, ROTATED_PASSWORD, USER, cert_dir, oauth_server, smtp_server};

const WRONG_PASSWORD: &str = "wr0ng-pa55word-e2e";
const CLIENT_SECRET: &str = "oauth-client-s3cret-e2e";
const SES_ACCESS_KEY_ID: &str = "AKIAE2ETESTKEY000001";
const SES_SECRET_KEY: &str = "e2e/SesSecretAccessKey+0123456789abcdefXYZ";

async fn wait_es(
    bed: &Bed,
    ns: &str,
    name: &str,
    t: &str,
    status: &str,
    reason: &str,
) -> EmailSettings {
    eventually(
        &format!("EmailSettings {ns}/{name} {t}={status} ({reason})"),
        WAIT,
        || get_es(bed, ns, name),
        |e| condition(e, t).is_some_and(|(s, r)| s == status && r == reason),
    )
    .await
    .expect("exists")
}

async fn secret(bed: &Bed, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(bed.client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get secret")
}

fn value(s: &Secret, key: &str) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_else(|| panic!("no key {key}"))
}

async fn put_secret(bed: &Bed, ns: &str, name: &str, data: Value) {
    bed.apply::<Secret>(
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data}),
    )
    .await;
}

fn external(ns: &str, port: u16) -> Value {
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": ns},
        "spec": {"from": "billing@yourcompany.com", "delivery": "ExternalSmtp",
                 "externalSmtp": {"host": "localhost", "port": port, "startTls": true,
                                  "authentication": "UsernamePassword", "username": USER,
                                  "passwordSecretRef": {"name": "smtp", "key": "password"},
                                  "caBundleSecretRef": {"name": "relay-ca", "key": "ca.pem"}}}
    })
}

fn ca_pem() -> String {
    std::fs::read_to_string(cert_dir().join("ca.pem")).expect("ca.pem")
}

#[tokio::test]
async fn external_smtp_publishes_only_validated_configurations() {
    let Some(server) = smtp_server("starttls-auth", &["--password", ROTATED_PASSWORD]) else {
        return;
    };
    let Some(oauth) = oauth_server("email-operator", CLIENT_SECRET) else {
        return;
    };
    let jwks = format!("https://localhost:{}/jwks", oauth.port);
    let Some(xoauth2) = smtp_server("xoauth2", &["--jwks", &jwks]) else {
        return;
    };
    let mut bed = Bed::up().await;
    // The OAuth server's certificate is the test CA's, as a platform's identity provider may be.
    let ca = cert_dir().join("ca.pem");
    let log = bed.start_operator_with(&["--oauth2-ca-file", ca.to_str().expect("path")], DEBUG);
    let ns = "billing";
    bed.namespace(ns).await;
    put_secret(&bed, ns, "smtp", json!({"password": PASSWORD})).await;
    put_secret(&bed, ns, "relay-ca", json!({"ca.pem": ca_pem()})).await;
    bed.apply::<EmailSettings>(ns, external(ns, server.port))
        .await;

    // Apply → tested → published with the validated generation.
    let ready = wait_es(&bed, ns, "notifications", "Ready", "True", "Published").await;
    let generation = ready.metadata.generation.expect("generation");
    let st = ready.status.clone().expect("status");
    assert_eq!(st.observed_generation, Some(generation));
    let out = st.output_secret.expect("outputSecret");
    assert_eq!(
        (out.name.as_str(), out.validated_generation),
        ("notifications-smtp", generation)
    );
    let test = st.last_connection_test.expect("lastConnectionTest");
    assert_eq!(
        (test.reason.as_str(), test.path.as_deref()),
        ("Succeeded", Some("starttls"))
    );
    let published = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("published Secret");
    let port = server.port.to_string();
    for (key, want) in [
        ("host", "localhost"),
        ("port", port.as_str()),
        ("username", USER),
        ("password", PASSWORD),
        ("from", "billing@yourcompany.com"),
        ("tls", "starttls"),
    ] {
        assert_eq!(value(&published, key), want, "key {key}");
    }
    assert_eq!(
        value(&published, "url"),
        format!("smtp://notifications%40yourcompany.com:{PASSWORD}@localhost:{port}")
    );
    let annotations = published.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("email.ops.dev/validated-generation"),
        Some(&generation.to_string())
    );
    assert!(
        annotations
            .get("email.ops.dev/inputs-hash")
            .is_some_and(|h| h.starts_with("sha256:"))
    );
    let owner = &published.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("EmailSettings", ready.metadata.uid.as_deref().unwrap())
    );

    // A wrong password → BadCredentials; the published Secret is untouched, byte for byte.
    put_secret(&bed, ns, "smtp", json!({"password": WRONG_PASSWORD})).await;
    let failed = wait_es(
        &bed,
        ns,
        "notifications",
        "ConnectionVerified",
        "False",
        "BadCredentials",
    )
    .await;
    let ready = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "BadCredentials")
    );
    assert!(
        ready
            .message
            .contains("Check the username and the password"),
        "{}",
        ready.message
    );
    assert!(
        ready.message.contains(&format!(
            "still holds the last validated configuration (generation {generation})"
        )),
        "{}",
        ready.message
    );
    let after = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("still there");
    assert_eq!(after.data, published.data, "data unchanged");
    assert_eq!(after.metadata.annotations, published.metadata.annotations);
    assert_eq!(
        after.metadata.resource_version, published.metadata.resource_version,
        "not written at all"
    );

    // A broken spec edit (unknown host) → UnknownHost for the new generation; Secret untouched.
    let mut broken = external(ns, server.port);
    broken["spec"]["externalSmtp"]["host"] = json!("smtp.does-not-exist.invalid");
    bed.apply::<EmailSettings>(ns, broken).await;
    let unknown = wait_es(
        &bed,
        ns,
        "notifications",
        "ConnectionVerified",
        "False",
        "UnknownHost",
    )
    .await;
    assert_eq!(
        unknown.status.as_ref().and_then(|s| s.observed_generation),
        unknown.metadata.generation
    );
    let after = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("still there");
    assert_eq!(
        after.metadata.resource_version,
        published.metadata.resource_version
    );

    // Fix both: the rotated password is tested and published for the newest generation.
    put_secret(&bed, ns, "smtp", json!({"password": ROTATED_PASSWORD})).await;
    bed.apply::<EmailSettings>(ns, external(ns, server.port))
        .await;
    let ready = wait_es(&bed, ns, "notifications", "Ready", "True", "Published").await;
    let newest = ready.metadata.generation.expect("generation");
    assert!(newest > generation);
    let updated = eventually(
        "the rotated password in the published Secret",
        WAIT,
        || secret(&bed, ns, "notifications-smtp"),
        |s| {
            s.as_ref()
                .is_some_and(|s| value(s, "password") == ROTATED_PASSWORD)
        },
    )
    .await
    .expect("published");
    assert_eq!(
        updated
            .metadata
            .annotations
            .unwrap_or_default()
            .get("email.ops.dev/validated-generation"),
        Some(&newest.to_string())
    );

    // Deleting the output Secret republishes it; a Secret someone else owns is left alone.
    bed.delete_object::<Secret>(ns, "notifications-smtp").await;
    eventually(
        "the output Secret republished",
        WAIT,
        || secret(&bed, ns, "notifications-smtp"),
        |s| {
            s.as_ref()
                .is_some_and(|s| value(s, "password") == ROTATED_PASSWORD)
        },
    )
    .await;
    put_secret(&bed, ns, "taken", json!({"keep": "me"})).await;
    let mut other = external(ns, server.port);
    other["metadata"]["name"] = json!("other");
    other["spec"]["outputSecretName"] = json!("taken");
    bed.apply::<EmailSettings>(ns, other).await;
    wait_es(&bed, ns, "other", "Ready", "False", "OutputSecretNotOwned").await;
    let taken = secret(&bed, ns, "taken").await.expect("taken");
    assert_eq!(value(&taken, "keep"), "me");
    assert!(
        taken
            .data
            .as_ref()
            .is_some_and(|d| !d.contains_key("password"))
    );

    // XOAUTH2 through oauth2-mock-server, in another namespace.
    let ns2 = "support";
    bed.namespace(ns2).await;
    put_secret(
        &bed,
        ns2,
        "smtp-oauth",
        json!({"clientSecret": CLIENT_SECRET}),
    )
    .await;
    put_secret(&bed, ns2, "relay-ca", json!({"ca.pem": ca_pem()})).await;
    let oauth_settings = |secret_key: &str| {
        json!({
            "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
            "metadata": {"name": "notifications", "namespace": ns2},
            "spec": {"from": USER, "delivery": "ExternalSmtp",
                     "externalSmtp": {"host": "localhost", "port": xoauth2.port, "startTls": true,
                                      "authentication": "OAuth2", "username": USER,
                                      "oauth2": {"tokenUrl": format!("https://localhost:{}/token", oauth.port),
                                                 "clientId": "email-operator",
                                                 "clientSecretRef": {"name": "smtp-oauth", "key": secret_key}},
                                      "caBundleSecretRef": {"name": "relay-ca", "key": "ca.pem"}}}
        })
    };
    bed.apply::<EmailSettings>(ns2, oauth_settings("clientSecret"))
        .await;
    wait_es(&bed, ns2, "notifications", "Ready", "True", "Published").await;
    let published = secret(&bed, ns2, "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(value(&published, "authentication"), "oauth2");
    assert_eq!(
        value(&published, "password"),
        "",
        "an expiring token is never published"
    );
    put_secret(
        &bed,
        ns2,
        "smtp-oauth",
        json!({"clientSecret": CLIENT_SECRET, "wrong": "not-the-client-secret"}),
    )
    .await;
    bed.apply::<EmailSettings>(ns2, oauth_settings("wrong"))
        .await;
    wait_es(
        &bed,
        ns2,
        "notifications",
        "ConnectionVerified",
        "False",
        "AuthenticationFailed",
    )
    .await;

    // One test per change of the inputs (8 changes above, the republish needed none), however
    // many watch events the status writes and Secret edits caused.
    assert!(
        connection_tests(&log) <= 9,
        "{} tests",
        connection_tests(&log)
    );
    assert_no_secrets_written(
        &bed,
        &log,
        &[
            PASSWORD,
            ROTATED_PASSWORD,
            WRONG_PASSWORD,
            CLIENT_SECRET,
            "not-the-client-secret",
        ],
    )
    .await;
    drop((server, xoauth2, oauth));
}

/// How many connection tests the operator ran (one log line each).
fn connection_tests(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .expect("operator log")
        .matches("\"connection test\"")
        .count()
}

/// Searches everything the operator wrote (its log, Events, EmailSettings and SenderIdentity
/// objects) for the test secrets; only Secrets may hold them.
async fn assert_no_secrets_written(bed: &Bed, log: &std::path::Path, secrets: &[&str]) {
    let log_text = std::fs::read_to_string(log).expect("operator log");
    assert!(
        log_text.contains("connection test"),
        "the log is the operator's"
    );
    let events = Api::<k8s_openapi::api::events::v1::Event>::all(bed.client.clone())
        .list(&Default::default())
        .await
        .expect("events");
    assert!(!events.items.is_empty(), "the operator published Events");
    let settings = Api::<EmailSettings>::all(bed.client.clone())
        .list(&Default::default())
        .await
        .expect("settings");
    let identities = Api::<SenderIdentity>::all(bed.client.clone())
        .list(&Default::default())
        .await
        .expect("identities");
    let written = [
        ("the operator log", log_text),
        (
            "Events",
            serde_json::to_string(&events.items).expect("json"),
        ),
        (
            "EmailSettings",
            serde_json::to_string(&settings.items).expect("json"),
        ),
        (
            "SenderIdentities",
            serde_json::to_string(&identities.items).expect("json"),
        ),
    ];
    for (what, text) in &written {
        for s in secrets {
            assert!(!text.contains(s), "{what} contain a secret value");
        }
    }
}

/// An AdvancedSmtp set-up: the operator's SES SMTP endpoint is an aiosmtpd server taking the
/// SES SMTP passwords of `regions` (the first is the EmailSettings' region), and the namespace
/// `billing` holds the SES key Secret `ses-key` and the EmailSettings `notifications` to apply
/// (returned, with the operator's log). `None` where the SMTP test servers are not installed.
struct SesSmtp {
    bed: Bed,
    log: std::path::PathBuf,
    passwords: Vec<String>,
    settings: Value,
    _server: support::Server,
}

async fn ses_smtp(regions: &[&str]) -> Option<SesSmtp> {
    let passwords: Vec<String> = regions
        .iter()
        .map(|r| email_operator::smtp::ses_password::smtp_password(SES_SECRET_KEY, r))
        .collect();
    let mut args = vec!["--user", SES_ACCESS_KEY_ID];
    for p in &passwords {
        args.extend(["--password", p.as_str()]);
    }
    let server = smtp_server("starttls-auth", &args)?;
    let mut bed = Bed::up().await;
    let flags = fast_with_ses_smtp(server.port, &cert_dir().join("ca.pem"));
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let log = bed.start_operator_with(&args, DEBUG);
    bed.namespace("billing").await;
    put_secret(
        &bed,
        "billing",
        "ses-key",
        json!({"accessKeyId": SES_ACCESS_KEY_ID, "secretAccessKey": SES_SECRET_KEY}),
    )
    .await;
    let mut settings = settings("billing", &["employee@yourcompany.com"]);
    settings["spec"]["advancedSmtp"]["region"] = json!(regions[0]);
    settings["spec"]["advancedSmtp"]["smtpCredentialsSecretRef"] = json!({"name": "ses-key"});
    Some(SesSmtp {
        bed,
        log,
        passwords,
        settings,
        _server: server,
    })
}

#[tokio::test]
async fn advanced_smtp_is_ready_once_a_covering_identity_verifies() {
    let Some(SesSmtp {
        bed,
        log,
        passwords,
        settings: mut spec,
        _server,
    }) = ses_smtp(&["us-east-1"]).await
    else {
        return;
    };
    let smtp_password = passwords[0].clone();
    let ns = "billing";
    spec["spec"]["advancedSmtp"]["configurationSetName"] = json!("notifications");
    bed.apply::<EmailSettings>(ns, spec).await;

    // The SMTP credentials work, but nothing covers billing@yourcompany.com yet.
    wait_es(
        &bed,
        ns,
        "notifications",
        "ConnectionVerified",
        "True",
        "Succeeded",
    )
    .await;
    let waiting = wait_es(
        &bed,
        ns,
        "notifications",
        "SenderVerified",
        "False",
        "SenderNotVerified",
    )
    .await;
    assert_eq!(
        condition(&Some(waiting.clone()), "Ready"),
        Some(("False".into(), "SenderNotVerified".into()))
    );
    let usage = waiting
        .status
        .and_then(|s| s.identity_usage)
        .expect("identityUsage");
    assert_eq!(
        (usage.domain.as_str(), usage.email.as_str()),
        ("0/1", "0/3")
    );
    assert!(
        secret(&bed, ns, "notifications-smtp").await.is_none(),
        "nothing is published before the sender is verified"
    );

    bed.apply::<SenderIdentity>(ns, identity(ns, "yourcompany-com", "yourcompany.com"))
        .await;
    let si = wait_records(&bed, ns, "yourcompany-com", WAIT).await;
    // The same reason as before the identity existed; the message tells the two apart.
    eventually(
        "SenderVerified False: covered, not verified yet",
        WAIT,
        || get_es(&bed, ns, "notifications"),
        |e| {
            condition_of(e.as_ref(), "SenderVerified").is_some_and(|(status, reason, message)| {
                status == "False"
                    && reason == "SenderNotVerified"
                    && message.contains("not verified yet")
            })
        },
    )
    .await
    .expect("exists");
    publish_dkim(&bed, &si).await;

    let ready = wait_es(&bed, ns, "notifications", "Ready", "True", "Published").await;
    assert_eq!(
        condition(&Some(ready.clone()), "SenderVerified"),
        Some(("True".into(), "SenderCovered".into()))
    );
    assert_eq!(
        condition(&Some(ready.clone()), "DmarcAligned"),
        Some(("True".into(), "DomainIdentityVerified".into()))
    );
    let usage = ready
        .status
        .and_then(|s| s.identity_usage)
        .expect("identityUsage");
    assert_eq!(
        (usage.domain.as_str(), usage.email.as_str()),
        ("1/1", "0/3")
    );
    let published = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(value(&published, "host"), "localhost");
    assert_eq!(value(&published, "username"), SES_ACCESS_KEY_ID);
    assert_eq!(value(&published, "password"), smtp_password);
    assert_eq!(value(&published, "tls"), "starttls");
    assert_eq!(value(&published, "configurationSet"), "notifications");

    // The identity's progress re-evaluated the settings many times; the connection was tested
    // once.
    assert_eq!(connection_tests(&log), 1);
    assert_no_secrets_written(&bed, &log, &[SES_SECRET_KEY, &smtp_password]).await;
}

/// An EmailSettings `notifications` with `delivery: Default` (the default).
fn default_delivery(ns: &str) -> Value {
    json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
           "metadata": {"name": "notifications", "namespace": ns},
           "spec": {"from": "billing@yourcompany.com"}})
}

#[tokio::test]
async fn default_delivery_uses_the_operator_relay() {
    let Some(server) = smtp_server("starttls-auth", &[]) else {
        return;
    };
    let mut bed = Bed::up().await;
    let log = bed.start_operator_with(
        &[
            "--default-relay-secret",
            "email-system/relay",
            "--default-relay-namespaces",
            "billing",
        ],
        DEBUG,
    );
    bed.namespace("email-system").await;
    bed.namespace("billing").await;
    bed.apply::<EmailSettings>("billing", default_delivery("billing"))
        .await;
    let missing = wait_es(
        &bed,
        "billing",
        "notifications",
        "Ready",
        "False",
        "DefaultRelayInvalid",
    )
    .await;
    let (_, _, message) = condition_of(Some(&missing), "Ready").expect("Ready");
    assert!(
        message.contains("email-system/relay does not exist"),
        "{message}"
    );

    // Creating the relay Secret is noticed through the Secret watch.
    put_secret(
        &bed,
        "email-system",
        "relay",
        json!({"host": "localhost", "port": server.port.to_string(), "tls": "starttls",
               "username": USER, "password": PASSWORD, "caBundle": ca_pem()}),
    )
    .await;
    wait_es(
        &bed,
        "billing",
        "notifications",
        "Ready",
        "True",
        "Published",
    )
    .await;
    let published = secret(&bed, "billing", "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(value(&published, "from"), "billing@yourcompany.com");
    assert_eq!(value(&published, "username"), USER);
    assert_eq!(
        connection_tests(&log),
        1,
        "no test ran while the relay Secret was missing"
    );
    assert_no_secrets_written(&bed, &log, &[PASSWORD]).await;
}

#[tokio::test]
async fn default_delivery_without_a_relay_is_not_configured() {
    let mut bed = Bed::up().await;
    bed.start_operator(&[]);
    bed.namespace("billing").await;
    bed.apply::<EmailSettings>("billing", default_delivery("billing"))
        .await;
    let es = wait_es(
        &bed,
        "billing",
        "notifications",
        "Ready",
        "False",
        "DefaultRelayNotConfigured",
    )
    .await;
    assert_eq!(
        condition(&Some(es), "ConnectionVerified"),
        Some(("False".into(), "DefaultRelayNotConfigured".into()))
    );
    assert!(
        secret(&bed, "billing", "notifications-smtp")
            .await
            .is_none()
    );
}

/// Where SES holds `name`: (region, whether one of our owners still claims it), sorted.
async fn held(bed: &Bed, name: &str) -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> = bed.get("/ses/identities").await["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|i| i["name"].as_str() == Some(name))
        .map(|i| {
            let claimed = i["tags"]
                .as_object()
                .is_some_and(|t| t.keys().any(|k| k.starts_with("email.ops.dev/owner/")));
            (
                i["region"].as_str().unwrap_or_default().to_string(),
                claimed,
            )
        })
        .collect();
    found.sort();
    found
}

/// A SenderIdentity's region, and the regions it still holds an identity in after a move.
fn location(si: &Option<SenderIdentity>) -> (Option<String>, Vec<String>) {
    let st = si.as_ref().and_then(|s| s.status.as_ref());
    let formers = st.map(|s| {
        s.former_locations
            .iter()
            .map(|l| l.region.clone())
            .collect()
    });
    (
        st.and_then(|s| s.ses.as_ref()).map(|l| l.region.clone()),
        formers.unwrap_or_default(),
    )
}

fn validated_generation(es: &EmailSettings) -> Option<i64> {
    let published = es.status.as_ref().and_then(|s| s.output_secret.as_ref());
    published.map(|o| o.validated_generation)
}

#[tokio::test]
async fn a_region_move_keeps_the_old_identity_until_the_new_configuration_is_published() {
    let Some(SesSmtp {
        bed,
        passwords,
        settings: mut spec,
        _server,
        ..
    }) = ses_smtp(&["us-east-1", "eu-west-1"]).await
    else {
        return;
    };
    let ns = "billing";
    bed.apply::<EmailSettings>(ns, spec.clone()).await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "yourcompany-com", "yourcompany.com"))
        .await;
    let mut kept = identity(ns, "noreply", "noreply@en.yourcompany.com");
    kept["spec"]["deletionPolicy"] = json!("Retain");
    bed.apply::<SenderIdentity>(ns, kept).await;
    let si = wait_records(&bed, ns, "yourcompany-com", WAIT).await;
    let old_tokens = cname_values(&si);
    publish_dkim(&bed, &si).await;
    eventually(
        "the email identity created in us-east-1",
        WAIT,
        || held(&bed, "noreply@en.yourcompany.com"),
        |h| h.len() == 1,
    )
    .await;
    bed.post(
        "/ses/confirm-email",
        json!({"identity": "noreply@en.yourcompany.com"}),
    )
    .await;
    wait_condition(&bed, ns, "noreply", "Ready", "True", None).await;
    wait_es(&bed, ns, "notifications", "Ready", "True", "Published").await;
    let before = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(value(&before, "password"), passwords[0]);

    // The EmailSettings moves to eu-west-1: new identities there, the old ones still held,
    // and applications keep the us-east-1 configuration.
    spec["spec"]["advancedSmtp"]["region"] = json!("eu-west-1");
    bed.apply::<EmailSettings>(ns, spec).await;
    let si = eventually(
        "the domain's records from eu-west-1",
        WAIT,
        || sid(&bed, ns, "yourcompany-com"),
        |si| {
            location(si) == (Some("eu-west-1".into()), vec!["us-east-1".into()])
                && si.as_ref().map(cname_values).is_some_and(|v| v.len() == 3)
        },
    )
    .await
    .expect("exists");
    assert_ne!(cname_values(&si), old_tokens, "new tokens in eu-west-1");
    assert_eq!(
        held(&bed, "yourcompany.com").await,
        [("eu-west-1".into(), true), ("us-east-1".into(), true)]
    );
    let moving = wait_es(
        &bed,
        ns,
        "notifications",
        "Ready",
        "False",
        "SenderNotVerified",
    )
    .await;
    assert_eq!(validated_generation(&moving), Some(1));
    assert_eq!(
        secret(&bed, ns, "notifications-smtp").await.expect("kept"),
        before,
        "the us-east-1 configuration stays published"
    );

    // Verified in eu-west-1: the new configuration is published, and only then is the old
    // domain identity deleted (its last owner, deletionPolicy Delete).
    publish_dkim(&bed, &si).await;
    eventually(
        "the eu-west-1 configuration published",
        WAIT,
        || get_es(&bed, ns, "notifications"),
        |es| es.as_ref().and_then(validated_generation) == Some(2),
    )
    .await;
    eventually(
        "nothing held in us-east-1 by the domain",
        WAIT,
        || sid(&bed, ns, "yourcompany-com"),
        |si| location(si) == (Some("eu-west-1".into()), vec![]),
    )
    .await;
    let es = get_es(&bed, ns, "notifications").await.expect("exists");
    assert_eq!(
        validated_generation(&es),
        Some(2),
        "published before the release"
    );
    let after = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(value(&after, "password"), passwords[1]);
    assert_eq!(
        held(&bed, "yourcompany.com").await,
        [("eu-west-1".into(), true)]
    );

    // The Retain identity is let go in us-east-1 once verified in eu-west-1: it stays there,
    // no longer claimed.
    eventually(
        "the email identity created in eu-west-1",
        WAIT,
        || held(&bed, "noreply@en.yourcompany.com"),
        |h| h.len() == 2,
    )
    .await;
    bed.post(
        "/ses/confirm-email",
        json!({"identity": "noreply@en.yourcompany.com", "region": "eu-west-1"}),
    )
    .await;
    eventually(
        "nothing held in us-east-1 by the email identity",
        WAIT,
        || sid(&bed, ns, "noreply"),
        |si| location(si) == (Some("eu-west-1".into()), vec![]),
    )
    .await;
    assert_eq!(
        held(&bed, "noreply@en.yourcompany.com").await,
        [("eu-west-1".into(), true), ("us-east-1".into(), false)]
    );
    assert_eq!(bed.ses_calls("DeleteEmailIdentity").await, 1);
}

/// With `--dns-server` (the test bed's DNS here), SMTP hosts are resolved there too: a relay
/// name only that server knows is tested and published, as the operator's DNS record checks
/// already use it.
#[tokio::test]
async fn smtp_hosts_resolve_through_the_dns_server_the_operator_is_given() {
    let Some(server) = smtp_server("plain-auth", &[]) else {
        return;
    };
    let mut bed = Bed::up().await;
    bed.post(
        "/dns/records",
        json!({"name": "relay.yourcompany.test", "type": "A", "value": "127.0.0.1"}),
    )
    .await;
    bed.start_operator(&[]);
    let ns = "billing";
    bed.namespace(ns).await;
    put_secret(&bed, ns, "smtp", json!({"password": PASSWORD})).await;
    let mut es = external(ns, server.port);
    es["spec"]["externalSmtp"]["host"] = json!("relay.yourcompany.test");
    es["spec"]["externalSmtp"]["startTls"] = json!(false);
    es["spec"]["externalSmtp"]
        .as_object_mut()
        .expect("externalSmtp")
        .remove("caBundleSecretRef");
    bed.apply::<EmailSettings>(ns, es).await;
    let ready = wait_es(&bed, ns, "notifications", "Ready", "True", "Published").await;
    assert_eq!(
        condition(&Some(ready), "ConnectionVerified"),
        Some(("True".into(), "Succeeded".into()))
    );
    let published = secret(&bed, ns, "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(value(&published, "host"), "relay.yourcompany.test");
}
