use super::decide::{self, Memo, Next};
use super::publish::{self, Published};
use super::settings_for_secret;
use super::status::{self, Inputs, Problem, Test};
use crate::crd::conditions::{reasons, types};
use crate::crd::email_settings::Delivery;
use crate::crd::{EmailSettings, EmailSettingsStatus, SenderIdentity};
use crate::smtp::target::{Prepared, default_relay};
use crate::smtp::{Auth, ConnectionPath, Failure, Outcome, Secret as Pw, Target};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn prepared(password: &str) -> Prepared {
    Prepared {
        target: Target {
            host: "smtp.yourcompany.com".into(),
            port: 587,
            implicit_tls: None,
            start_tls: true,
            auth: Some(Auth::Password {
                username: "notifications@yourcompany.com".into(),
                password: Pw::new(password),
            }),
            from: "billing@yourcompany.com".into(),
            ca_bundle_pem: None,
            restricted: true,
        },
        oauth2: None,
        username: "notifications@yourcompany.com".into(),
    }
}

fn passed() -> Outcome {
    Outcome {
        path: ConnectionPath::StartTls,
        port: 587,
        duration: Duration::from_millis(42),
    }
}

fn es(yaml: &str) -> EmailSettings {
    serde_saphyr::from_str(&format!(
        "apiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {{name: notifications, namespace: billing, uid: u1, generation: 3}}\nspec:\n{yaml}"
    ))
    .expect("yaml")
}

fn si(name: &str, identity: &str, verified: bool, created: i64) -> SenderIdentity {
    let mut si: SenderIdentity = serde_saphyr::from_str(&format!(
        "apiVersion: email.ops.dev/v1alpha1\nkind: SenderIdentity\nmetadata: {{name: {name}, namespace: billing}}\nspec: {{emailSettingsRef: {{name: notifications}}, identity: '{identity}'}}\n"
    ))
    .expect("yaml");
    si.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        at(created),
    ));
    si.status = Some(crate::crd::SenderIdentityStatus {
        verified_for_sending: Some(verified),
        ses: Some(crate::crd::sender_identity::SesLocation {
            region: "us-east-1".into(),
            role_arn: None,
        }),
        ..Default::default()
    });
    si
}

const EXTERNAL: &str = "  from: billing@yourcompany.com\n  delivery: ExternalSmtp\n  externalSmtp: {host: smtp.yourcompany.com, port: 587, authentication: UsernamePassword, username: notifications@yourcompany.com, passwordSecretRef: {name: smtp, key: password}}\n";
const ADVANCED: &str = "  from: billing@yourcompany.com\n  delivery: AdvancedSmtp\n  activeUsers: [employee@yourcompany.com]\n  advancedSmtp: {region: us-east-1, smtpCredentialsSecretRef: {name: ses-key}}\n";

fn cond(s: &EmailSettingsStatus, t: &str) -> (String, String, String) {
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

// decide

#[test]
fn a_pass_is_reused_until_revalidation_is_due() {
    let fp = publish::fingerprint(&prepared("pw"), &BTreeMap::new());
    let memo = Memo::record(None, &fp, at(0), Duration::from_millis(5), Ok(passed()));
    let every = Duration::from_secs(3600);
    assert!(matches!(
        decide::next(at(3599), &fp, Some(&memo), None, every),
        Next::Passed { due, .. } if due == at(3600)
    ));
    assert_eq!(
        decide::next(at(3600), &fp, Some(&memo), None, every),
        Next::Test
    );
    // Other inputs (a rotated password) are tested at once.
    let other = publish::fingerprint(&prepared("rotated"), &BTreeMap::new());
    assert_ne!(fp, other);
    assert_eq!(
        decide::next(at(1), &other, Some(&memo), None, every),
        Next::Test
    );
}

#[test]
fn after_a_restart_the_published_secret_stands_for_the_pass() {
    let fp = publish::fingerprint(&prepared("pw"), &BTreeMap::new());
    let published = Published {
        generation: Some(3),
        validated_at: Some(at(0)),
        inputs_hash: Some(fp.clone()),
        data: BTreeMap::new(),
    };
    let every = Duration::from_secs(86400);
    assert!(matches!(
        decide::next(at(10), &fp, None, Some(&published), every),
        Next::Passed { outcome: None, at: t, .. } if t == at(0)
    ));
    assert_eq!(
        decide::next(at(86400), &fp, None, Some(&published), every),
        Next::Test
    );
    let other = publish::fingerprint(&prepared("new"), &BTreeMap::new());
    assert_eq!(
        decide::next(at(10), &other, None, Some(&published), every),
        Next::Test
    );
}

#[test]
fn failures_back_off_and_transient_ones_retry_sooner() {
    let every = Duration::from_secs(86400);
    let bad = Failure::BadCredentials("535".into());
    let timeout = Failure::ConnectFailed("smtp.yourcompany.com:587".into());
    assert_eq!(decide::retry_after(&bad, 1, every), Duration::from_secs(60));
    assert_eq!(
        decide::retry_after(&bad, 3, every),
        Duration::from_secs(240)
    );
    assert_eq!(
        decide::retry_after(&bad, 30, every),
        Duration::from_secs(1800)
    );
    assert_eq!(
        decide::retry_after(&timeout, 1, every),
        Duration::from_secs(15)
    );
    assert_eq!(
        decide::retry_after(&timeout, 9, every),
        Duration::from_secs(300)
    );
    // Never longer than the revalidation interval.
    assert_eq!(
        decide::retry_after(&bad, 30, Duration::from_secs(120)),
        Duration::from_secs(120)
    );
    let fp = "sha256:x";
    let first = Memo::record(None, fp, at(0), Duration::ZERO, Err(bad.clone()));
    let second = Memo::record(Some(&first), fp, at(60), Duration::ZERO, Err(bad.clone()));
    assert_eq!((first.failures, second.failures), (1, 2));
    assert!(matches!(
        decide::next(at(100), fp, Some(&second), None, every),
        Next::Failed { due, .. } if due == at(180)
    ));
    assert_eq!(
        decide::next(at(180), fp, Some(&second), None, every),
        Next::Test
    );
    let ok = Memo::record(Some(&second), fp, at(200), Duration::ZERO, Ok(passed()));
    assert_eq!(ok.failures, 0);
}

#[test]
fn revalidate_every_reads_durations() {
    assert_eq!(decide::revalidate_every(None), decide::DEFAULT_REVALIDATE);
    assert_eq!(
        decide::revalidate_every(Some("1h30m")),
        Duration::from_secs(5400)
    );
    assert_eq!(
        decide::revalidate_every(Some("90s")),
        Duration::from_secs(90)
    );
    // Below the 1m floor or unreadable: the default (admission rejects both).
    assert_eq!(
        decide::revalidate_every(Some("30s")),
        decide::DEFAULT_REVALIDATE
    );
    assert_eq!(
        decide::revalidate_every(Some("soon")),
        decide::DEFAULT_REVALIDATE
    );
}

// publish

#[test]
fn published_keys_and_url() {
    let mut p = prepared("p@ss word/:");
    p.target.host = "2001:db8::1".into();
    let data = publish::data(&p, &passed(), &BTreeMap::new());
    assert_eq!(data["host"], "2001:db8::1");
    assert_eq!(data["port"], "587");
    assert_eq!(data["tls"], "starttls");
    assert_eq!(data["authentication"], "password");
    assert_eq!(data["password"], "p@ss word/:");
    assert_eq!(
        data["url"],
        "smtp://notifications%40yourcompany.com:p%40ss%20word%2F%3A@[2001:db8::1]:587"
    );
    let implicit = Outcome {
        path: ConnectionPath::Implicit,
        port: 465,
        duration: Duration::ZERO,
    };
    let data = publish::data(&prepared("pw"), &implicit, &BTreeMap::new());
    assert_eq!(
        (data["tls"].as_str(), data["port"].as_str()),
        ("implicit", "465")
    );
    assert!(data["url"].starts_with("smtps://"));
    // A relay without authentication publishes no credentials.
    let mut open = prepared("pw");
    open.target.auth = None;
    open.username = String::new();
    let data = publish::data(&open, &passed(), &BTreeMap::new());
    assert_eq!(data["url"], "smtp://smtp.yourcompany.com:587");
    assert_eq!(data["authentication"], "none");
    assert_eq!(data["password"], "");
}

#[test]
fn the_fingerprint_covers_every_input() {
    let base = prepared("pw");
    let fp = |p: &Prepared| publish::fingerprint(p, &BTreeMap::new());
    let mut variants = vec![];
    let mut v = base.clone();
    v.target.host = "smtp2.yourcompany.com".into();
    variants.push(v);
    let mut v = base.clone();
    v.target.port = 25;
    variants.push(v);
    let mut v = base.clone();
    v.target.start_tls = false;
    variants.push(v);
    let mut v = base.clone();
    v.target.from = "other@yourcompany.com".into();
    variants.push(v);
    let mut v = base.clone();
    v.target.ca_bundle_pem = Some(b"PEM".to_vec());
    variants.push(v);
    variants.push(prepared("pw2"));
    for v in &variants {
        assert_ne!(fp(v), fp(&base), "{v:?}");
    }
    assert_eq!(fp(&prepared("pw")), fp(&base));
    assert_ne!(
        publish::fingerprint(
            &base,
            &BTreeMap::from([("configurationSet".into(), "x".into())])
        ),
        fp(&base)
    );
    assert!(!fp(&base).contains("pw"));
}

#[test]
fn the_manifest_is_owned_and_annotated() {
    let es = es(EXTERNAL);
    let data = BTreeMap::from([("password".to_string(), "pw".to_string())]);
    let m = publish::manifest(&es, &data, 3, at(0), "sha256:abc");
    assert_eq!(m["metadata"]["name"], "notifications-smtp");
    assert_eq!(m["metadata"]["namespace"], "billing");
    assert_eq!(
        m["metadata"]["annotations"][publish::VALIDATED_GENERATION],
        "3"
    );
    assert_eq!(
        m["metadata"]["annotations"][publish::INPUTS_HASH],
        "sha256:abc"
    );
    assert_eq!(m["metadata"]["ownerReferences"][0]["uid"], "u1");
    assert_eq!(m["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(m["data"]["password"], "cHc=");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(m).expect("a Secret");
    assert!(publish::is_ours(&secret, &es));
    let back = Published::of(&secret);
    assert_eq!(back.generation, Some(3));
    assert_eq!(back.validated_at, Some(at(0)));
    assert_eq!(back.data, data);
    let mut stranger = secret.clone();
    stranger.metadata.owner_references = None;
    assert!(!publish::is_ours(&stranger, &es));
    assert_eq!(
        publish::ownership(&stranger, &es),
        publish::Ownership::Foreign
    );
    // Deleted and created again: the Secret of the earlier one is not ours to take over.
    let mut recreated = es.clone();
    recreated.metadata.uid = Some("u2".into());
    assert_eq!(
        publish::ownership(&secret, &recreated),
        publish::Ownership::Predecessor
    );
    assert!(!publish::is_ours(&secret, &recreated));
}

#[test]
fn the_settings_label_is_a_valid_label_value_for_any_name() {
    let valid = |v: &str| {
        v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && v.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    assert_eq!(publish::label_value("notifications"), "notifications");
    let at_limit = "a".repeat(63);
    assert_eq!(publish::label_value(&at_limit), at_limit);
    let long = format!("{}.{}", "a".repeat(51), "b".repeat(148));
    let other = format!("{}.{}", "a".repeat(51), "c".repeat(148));
    let (l, o) = (publish::label_value(&long), publish::label_value(&other));
    assert!(valid(&l) && valid(&o), "{l} {o}");
    assert_ne!(l, o, "distinct names, distinct labels");

    let mut es = es(EXTERNAL);
    es.metadata.name = Some(long.clone());
    let m = publish::manifest(&es, &BTreeMap::new(), 1, at(0), "sha256:abc");
    assert_eq!(m["metadata"]["labels"][publish::SETTINGS_LABEL], l.as_str());
    assert_eq!(
        m["metadata"]["annotations"][publish::SETTINGS_LABEL],
        long.as_str()
    );
}

// status

fn compute(
    es: &EmailSettings,
    test: Test,
    published: Option<i64>,
    senders: Option<&status::Senders>,
) -> EmailSettingsStatus {
    status::compute(
        &EmailSettingsStatus::default(),
        &Inputs {
            es,
            now: at(5),
            test: &test,
            hints: &[],
            published_generation: published,
            publish_problem: None,
            senders,
            inputs: Some("v1"),
            account: None,
            test_message: None,
        },
    )
}

#[test]
fn a_failed_edit_says_the_last_validated_secret_still_stands() {
    let es = es(EXTERNAL);
    let failed = Test::Known(Next::Failed {
        at: at(0),
        duration: Duration::from_millis(30),
        failure: Failure::BadCredentials("535 5.7.8".into()),
        failures: 1,
        due: at(60),
    });
    let st = compute(&es, failed, Some(2), None);
    let (s, reason, message) = cond(&st, types::CONNECTION_VERIFIED);
    assert_eq!((s.as_str(), reason.as_str()), ("False", "BadCredentials"));
    assert!(message.contains("Bad username / password"), "{message}");
    assert!(
        message.contains("Check the username and the password"),
        "{message}"
    );
    let (s, reason, message) = cond(&st, types::READY);
    assert_eq!((s.as_str(), reason.as_str()), ("False", "BadCredentials"));
    assert!(
        message.contains("still holds the last validated configuration (generation 2)"),
        "{message}"
    );
    assert_eq!(
        st.output_secret.as_ref().map(|o| o.validated_generation),
        Some(2)
    );
    let t = st.last_connection_test.as_ref().expect("test");
    assert_eq!((t.reason.as_str(), t.duration_ms), ("BadCredentials", 30));
    // kstatus: bad credentials wait for someone to act.
    assert_eq!(cond(&st, types::STALLED).1, "BadCredentials");
    assert!(st.conditions.iter().all(|c| c.type_ != types::RECONCILING));
}

#[test]
fn a_passed_and_published_generation_is_ready() {
    let es = es(EXTERNAL);
    let test = Test::Known(Next::Passed {
        at: at(0),
        outcome: Some(passed()),
        due: at(86400),
    });
    let st = compute(&es, test.clone(), Some(3), None);
    assert_eq!(cond(&st, types::READY).1, reasons::PUBLISHED);
    assert!(
        st.conditions
            .iter()
            .all(|c| c.type_ != types::STALLED && c.type_ != types::RECONCILING)
    );
    assert_eq!(cond(&st, types::CONNECTION_VERIFIED).0, "True");
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(
        st.last_connection_test.and_then(|t| t.path).as_deref(),
        Some("starttls")
    );
    // Not yet written for this generation: not Ready.
    let st = compute(&es, test, Some(2), None);
    assert_eq!(cond(&st, types::READY).0, "False");
    assert!(
        st.conditions
            .iter()
            .all(|c| c.type_ != types::SENDER_VERIFIED)
    );
}

#[test]
fn unavailable_inputs_name_the_problem() {
    let es = es(EXTERNAL);
    let st = compute(
        &es,
        Test::Unavailable(Problem {
            reason: reasons::SECRET_NOT_FOUND,
            message: "Secret smtp has no key \"password\"".into(),
        }),
        None,
        None,
    );
    assert_eq!(cond(&st, types::READY).1, reasons::SECRET_NOT_FOUND);
    assert!(st.output_secret.is_none());
}

#[test]
fn advanced_smtp_waits_for_a_verified_covering_identity() {
    let es = es(ADVANCED);
    let passed = Test::Known(Next::Passed {
        at: at(0),
        outcome: Some(passed()),
        due: at(86400),
    });
    let none = status::senders(&es, &[]);
    assert!(none.sender_verified.is_none());
    assert!(
        none.missing.contains("no SenderIdentity"),
        "{}",
        none.missing
    );
    let st = compute(&es, passed.clone(), None, Some(&none));
    assert_eq!(
        cond(&st, types::SENDER_VERIFIED).1,
        reasons::SENDER_NOT_VERIFIED
    );
    assert_eq!(cond(&st, types::READY).1, reasons::SENDER_NOT_VERIFIED);
    assert_eq!(
        cond(&st, types::RECONCILING).1,
        reasons::SENDER_NOT_VERIFIED
    );
    assert_eq!(
        st.identity_usage
            .as_ref()
            .map(|u| (u.domain.as_str(), u.email.as_str())),
        Some(("0/1", "0/3"))
    );

    let pending = [si("billing", "billing@yourcompany.com", false, 0)];
    let s = status::senders(&es, &pending);
    assert!(s.missing.contains("not verified yet"), "{}", s.missing);

    let verified_email = [si("billing", "billing@yourcompany.com", true, 0)];
    let s = status::senders(&es, &verified_email);
    assert!(s.sender_verified.is_some());
    assert!(
        s.dmarc_aligned.is_none(),
        "an email identity does not align DKIM"
    );
    let st = compute(&es, passed.clone(), Some(3), Some(&s));
    assert_eq!(cond(&st, types::SENDER_VERIFIED).0, "True");
    assert_eq!(
        cond(&st, types::DMARC_ALIGNED).1,
        reasons::NO_VERIFIED_DOMAIN_IDENTITY
    );
    assert_eq!(cond(&st, types::READY).1, reasons::PUBLISHED);

    let domain = [
        si("billing", "billing@yourcompany.com", true, 0),
        si("domain", "yourcompany.com", true, 1),
    ];
    // An email identity and a domain identity of one domain conflict: the older one wins.
    let s = status::senders(&es, &domain);
    assert_eq!(s.usage.emails + s.usage.domains, 1);
    let domain_only = [si("domain", "yourcompany.com", true, 1)];
    let s = status::senders(&es, &domain_only);
    assert!(s.dmarc_aligned.is_some());
    // Verified in another region does not count.
    let mut elsewhere = si("domain", "yourcompany.com", true, 1);
    elsewhere
        .status
        .as_mut()
        .unwrap()
        .ses
        .as_mut()
        .unwrap()
        .region = "eu-west-1".into();
    assert!(status::senders(&es, &[elsewhere]).sender_verified.is_none());
}

#[test]
fn changing_delivery_drops_the_ses_conditions() {
    let advanced = es(ADVANCED);
    let s = status::senders(&advanced, &[]);
    let passed = Test::Known(Next::Passed {
        at: at(0),
        outcome: Some(passed()),
        due: at(86400),
    });
    let before = compute(&advanced, passed.clone(), None, Some(&s));
    let external = es(EXTERNAL);
    let after = status::compute(
        &before,
        &Inputs {
            es: &external,
            now: at(9),
            test: &passed,
            hints: &["Gmail needs an app password".to_string()],
            published_generation: Some(3),
            publish_problem: None,
            senders: None,
            inputs: Some("v1"),
            account: None,
            test_message: None,
        },
    );
    assert!(
        after
            .conditions
            .iter()
            .all(|c| c.type_ != types::SENDER_VERIFIED && c.type_ != types::DMARC_ALIGNED)
    );
    assert!(
        cond(&after, types::CONNECTION_VERIFIED)
            .2
            .contains("app password")
    );
    // ConnectionVerified stayed True: its transition time is kept.
    let t = |s: &EmailSettingsStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::CONNECTION_VERIFIED)
            .map(|c| c.last_transition_time.clone())
    };
    assert_eq!(t(&before), t(&after));
}

// watches

#[test]
fn secret_changes_reach_the_settings_that_read_or_publish_them() {
    let external = Arc::new(es(EXTERNAL));
    let mut default = es("  from: billing@yourcompany.com\n");
    default.metadata.name = Some("relayed".into());
    let default = Arc::new(default);
    let mut elsewhere = es(EXTERNAL);
    elsewhere.metadata.namespace = Some("other".into());
    let all = vec![external.clone(), default.clone(), Arc::new(elsewhere)];
    let relay = ("email-system".to_string(), "relay".to_string());
    let names = |v: Vec<
        kube::runtime::reflector::ObjectRef<crate::controller::packed::Packed<EmailSettings>>,
    >| {
        v.into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(settings_for_secret(
            Some("billing"),
            "smtp",
            &[],
            Some(&relay),
            &all
        )),
        ["billing/notifications"]
    );
    assert_eq!(
        names(settings_for_secret(
            Some("email-system"),
            "relay",
            &[],
            Some(&relay),
            &all
        )),
        ["billing/relayed"]
    );
    assert!(settings_for_secret(Some("billing"), "unrelated", &[], Some(&relay), &all).is_empty());
    let owner = kube::Resource::controller_owner_ref(external.as_ref(), &()).expect("owner");
    assert_eq!(
        names(settings_for_secret(
            Some("billing"),
            "notifications-smtp",
            &[owner],
            None,
            &all
        )),
        ["billing/notifications"]
    );
}

// default relay

#[test]
fn the_default_relay_secret_is_read_strictly() {
    let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let p = default_relay(
        &data(&[
            ("host", "relay.internal"),
            ("port", "2525"),
            ("username", "relay@yourcompany.com"),
            ("password", "pw\n"),
        ]),
        "billing@yourcompany.com",
    )
    .expect("relay");
    assert!(p.target.start_tls, "STARTTLS is the default");
    assert_eq!(p.target.port, 2525);
    assert_eq!(p.target.from, "billing@yourcompany.com");
    assert_eq!(
        p.target.auth,
        Some(Auth::Password {
            username: "relay@yourcompany.com".into(),
            password: Pw::new("pw")
        })
    );
    let open = default_relay(
        &data(&[("host", "relay.internal"), ("port", "25"), ("tls", "none")]),
        "a@b.co",
    )
    .expect("open relay");
    assert_eq!((open.target.auth, open.target.start_tls), (None, false));
    let implicit = default_relay(
        &data(&[("host", "relay"), ("port", "465"), ("tls", "implicit")]),
        "a@b.co",
    )
    .expect("implicit");
    assert_eq!(
        implicit.target.implicit_tls.map(|i| (i.port, i.fallback)),
        Some((465, false))
    );
    let oauth = default_relay(
        &data(&[
            ("host", "smtp.office365.com"),
            ("port", "587"),
            ("authentication", "OAuth2"),
            ("username", "relay@yourcompany.com"),
            ("oauth2TokenUrl", "https://login.example/token"),
            ("oauth2ClientId", "id"),
            ("oauth2ClientSecret", "cs"),
            ("oauth2Scopes", "a b"),
        ]),
        "a@b.co",
    )
    .expect("oauth2");
    assert_eq!(
        oauth.oauth2.map(|g| g.scopes),
        Some(vec!["a".into(), "b".into()])
    );
    for (bad, key) in [
        (data(&[("port", "25")]), "host"),
        (data(&[("host", "h"), ("port", "x")]), "port"),
        (
            data(&[("host", "h"), ("port", "25"), ("tls", "ssl")]),
            "tls",
        ),
        (
            data(&[("host", "h"), ("port", "25"), ("username", "u@b.co")]),
            "password",
        ),
        (
            data(&[
                ("host", "h"),
                ("port", "25"),
                ("authentication", "Kerberos"),
            ]),
            "authentication",
        ),
    ] {
        let e = default_relay(&bad, "a@b.co").expect_err(key);
        assert!(e.0.contains(key), "{e}");
    }
}

#[test]
fn a_failure_in_the_status_keeps_its_backoff_after_a_restart() {
    let mut es = es(EXTERNAL);
    let failure = Failure::ConnectFailed("smtp.yourcompany.com:587".into());
    let failed = Test::Known(Next::Failed {
        at: at(0),
        duration: Duration::from_millis(30),
        failure: failure.clone(),
        failures: 3,
        due: at(120),
    });
    es.status = Some(compute(&es, failed, None, None));
    let recorded = es
        .status
        .as_ref()
        .unwrap()
        .last_connection_test
        .clone()
        .unwrap();
    assert_eq!(recorded.failures, Some(3));
    assert_eq!(recorded.detail.as_deref(), Some("smtp.yourcompany.com:587"));
    // The same inputs: the failure comes back as this process would have remembered it.
    let memo = decide::memo_from_status(&es, "fp", "v1").expect("remembered");
    assert_eq!(memo.result, Err(failure));
    assert_eq!(memo.failures, 3);
    assert_eq!(memo.at, at(0));
    // A third consecutive failure of transient kind waits 15 s × 2² before the next test.
    match decide::next(at(30), "fp", Some(&memo), None, Duration::from_secs(86400)) {
        Next::Failed { due, .. } => assert_eq!(due, at(60)),
        other => panic!("{other:?}"),
    }
    // Other inputs (a changed Secret, another generation): tested at once.
    assert!(decide::memo_from_status(&es, "fp", "v2").is_none());
}

// the SES account's standing (AdvancedSmtp)

/// An AdvancedSmtp EmailSettings whose test passed, whose sender is covered and whose Secret
/// holds generation 1, with the account reading `result` of us-east-1.
fn with_account(
    prior: &EmailSettingsStatus,
    result: Result<crate::ses::AccountStanding, crate::ses::SesError>,
) -> EmailSettingsStatus {
    let mut es = es(ADVANCED);
    es.metadata.generation = Some(1);
    let test = Test::Known(Next::Passed {
        at: at(0),
        outcome: Some(passed()),
        due: at(86400),
    });
    let senders = status::Senders {
        sender_verified: Some("SenderIdentity billing (billing@yourcompany.com)".into()),
        dmarc_aligned: None,
        missing: String::new(),
        usage: crate::policy::Usage::default(),
    };
    let reading = crate::controller::account::Reading { at: at(3), result };
    status::compute(
        prior,
        &Inputs {
            es: &es,
            now: at(5),
            test: &test,
            hints: &[],
            published_generation: Some(1),
            publish_problem: None,
            senders: Some(&senders),
            inputs: Some("v1"),
            account: Some(("us-east-1", &reading)),
            test_message: None,
        },
    )
}

fn standing(f: impl FnOnce(&mut crate::ses::AccountStanding)) -> crate::ses::AccountStanding {
    let mut a = crate::ses::AccountStanding::production();
    f(&mut a);
    a
}

#[test]
fn a_sandboxed_account_warns_and_stays_ready() {
    let sandbox = standing(|a| {
        a.production_access = false;
        a.max_24_hour_send = 200.0;
        a.max_send_rate = 1.0;
        a.sent_last_24_hours = 12.0;
    });
    let st = with_account(&EmailSettingsStatus::default(), Ok(sandbox));
    let (status, reason, message) = cond(&st, types::SES_ACCOUNT_HEALTHY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", reasons::SES_SANDBOX)
    );
    for says in [
        "verified addresses",
        "mailbox simulator",
        "200 messages",
        "12 sent",
        "production access",
    ] {
        assert!(message.contains(says), "{says}: {message}");
    }
    assert_eq!(cond(&st, types::READY).0, "True", "mail still leaves");
    let shown = st.ses_account.as_ref().expect("sesAccount");
    assert_eq!(
        (
            shown.region.as_str(),
            shown.production_access,
            shown.max24_hour_send,
            shown.sent_last24_hours
        ),
        ("us-east-1", false, 200, 12)
    );
    assert_eq!(shown.checked_time.0, at(3));
    let events = status::transitions(&EmailSettingsStatus::default(), &st);
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == reasons::SES_SANDBOX),
        "{events:?}"
    );

    // Production access granted: the warning clears, with a normal Event.
    let granted = with_account(&st, Ok(crate::ses::AccountStanding::production()));
    let (status, reason, _) = cond(&granted, types::SES_ACCOUNT_HEALTHY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", reasons::SES_ACCOUNT_IN_GOOD_STANDING)
    );
    let events = status::transitions(&st, &granted);
    assert!(
        events
            .iter()
            .any(|e| !e.warning && e.reason == reasons::SES_ACCOUNT_IN_GOOD_STANDING),
        "{events:?}"
    );
}

#[test]
fn an_account_in_good_standing_from_the_start_is_no_news() {
    let st = with_account(
        &EmailSettingsStatus::default(),
        Ok(crate::ses::AccountStanding::production()),
    );
    assert_eq!(cond(&st, types::SES_ACCOUNT_HEALTHY).0, "True");
    let events = status::transitions(&EmailSettingsStatus::default(), &st);
    assert!(
        !events
            .iter()
            .any(|e| e.reason == reasons::SES_ACCOUNT_IN_GOOD_STANDING),
        "{events:?}"
    );
}

#[test]
fn a_shut_down_or_paused_account_stalls_ready_and_probation_warns() {
    for (f, reason) in [
        (
            standing(|a| a.enforcement_status = "SHUTDOWN".into()),
            reasons::SES_ACCOUNT_SHUT_DOWN,
        ),
        (
            standing(|a| a.sending_enabled = false),
            reasons::SES_SENDING_PAUSED,
        ),
    ] {
        let st = with_account(&EmailSettingsStatus::default(), Ok(f));
        assert_eq!(cond(&st, types::SES_ACCOUNT_HEALTHY).1, reason);
        let (ready, ready_reason, message) = cond(&st, types::READY);
        assert_eq!((ready.as_str(), ready_reason.as_str()), ("False", reason));
        assert!(
            message.contains("still holds the last validated configuration"),
            "{message}"
        );
        assert_eq!(cond(&st, types::STALLED).1, reason);
        assert_eq!(
            st.output_secret.as_ref().map(|o| o.validated_generation),
            Some(1)
        );
    }
    let probation = with_account(
        &EmailSettingsStatus::default(),
        Ok(standing(|a| a.enforcement_status = "PROBATION".into())),
    );
    assert_eq!(
        cond(&probation, types::SES_ACCOUNT_HEALTHY).1,
        reasons::SES_ACCOUNT_ON_PROBATION
    );
    assert_eq!(cond(&probation, types::READY).0, "True");
}

#[test]
fn an_unreadable_account_is_unknown_keeps_what_was_shown_and_blocks_nothing() {
    let sandbox = standing(|a| a.production_access = false);
    let before = with_account(&EmailSettingsStatus::default(), Ok(sandbox));
    let st = with_account(
        &before,
        Err(crate::ses::SesError::Rejected(
            "AccessDeniedException".into(),
        )),
    );
    let (status, reason, message) = cond(&st, types::SES_ACCOUNT_HEALTHY);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("Unknown", reasons::SES_ACCOUNT_UNREADABLE)
    );
    assert!(message.contains("ses:GetAccount"), "{message}");
    assert_eq!(cond(&st, types::READY).0, "True");
    assert_eq!(
        st.ses_account, before.ses_account,
        "the last reading stays shown"
    );

    // Another delivery method: the account is no longer this EmailSettings' concern.
    let external = es(EXTERNAL);
    let test = Test::Known(Next::Passed {
        at: at(0),
        outcome: Some(passed()),
        due: at(86400),
    });
    let after = status::compute(
        &st,
        &Inputs {
            es: &external,
            now: at(9),
            test: &test,
            hints: &[],
            published_generation: Some(3),
            publish_problem: None,
            senders: None,
            inputs: Some("v1"),
            account: None,
            test_message: None,
        },
    );
    assert!(after.ses_account.is_none());
    assert!(
        !after
            .conditions
            .iter()
            .any(|c| c.type_ == types::SES_ACCOUNT_HEALTHY)
    );
}

// test messages on request

fn published_via(data: &[(&str, &str)]) -> Published {
    Published {
        generation: Some(4),
        validated_at: None,
        inputs_hash: None,
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn ses_secret() -> Published {
    published_via(&[
        ("host", "email-smtp.us-east-1.amazonaws.com"),
        ("port", "587"),
        ("tls", "starttls"),
        ("authentication", "password"),
        ("username", "AKIAEXAMPLE"),
        ("password", "smtp-pa55word"),
        ("from", "billing@yourcompany.com"),
        ("configurationSet", "notifications"),
    ])
}

#[test]
fn a_test_message_is_due_once_per_new_annotation_value() {
    use super::test_message::requested;
    let mut es = es(ADVANCED);
    let none = EmailSettingsStatus::default();
    assert_eq!(requested(&es, &none), None, "no annotation, nothing sent");
    es.metadata.annotations = Some(BTreeMap::from([(
        crate::controller::SEND_TEST_ANNOTATION.to_string(),
        " ops@yourcompany.com ".to_string(),
    )]));
    assert_eq!(
        requested(&es, &none).as_deref(),
        Some("ops@yourcompany.com")
    );
    let via = super::test_message::Via {
        secret: "notifications-smtp",
        generation: Some(4),
        data: &ses_secret().data,
    };
    let answered = EmailSettingsStatus {
        last_test_message: Some(super::test_message::not_sent(
            "ops@yourcompany.com",
            at(0),
            &via,
            reasons::INVALID_RECIPIENT,
            String::new(),
        )),
        ..Default::default()
    };
    assert_eq!(
        requested(&es, &answered),
        None,
        "the same value is never sent twice"
    );
    es.metadata.annotations = Some(BTreeMap::from([(
        crate::controller::SEND_TEST_ANNOTATION.to_string(),
        "ops+2@yourcompany.com".to_string(),
    )]));
    assert_eq!(
        requested(&es, &answered).as_deref(),
        Some("ops+2@yourcompany.com")
    );
}

#[test]
fn a_test_message_says_what_sent_it_and_why_and_nothing_secret() {
    let secret = ses_secret();
    let via = super::test_message::Via {
        secret: "notifications-smtp",
        generation: secret.generation,
        data: &secret.data,
    };
    let origin = super::test_message::Origin::annotation("billing", "notifications");
    let letter = super::test_message::letter(
        &origin,
        &via,
        "bounce@simulator.amazonses.com",
        at(0),
        "abc",
    );
    assert_eq!(letter.to, "bounce@simulator.amazonses.com");
    let m = &letter.message;
    for header in [
        "From: billing@yourcompany.com\r\n",
        "To: bounce@simulator.amazonses.com\r\n",
        "Subject: Test message from EmailSettings billing/notifications\r\n",
        "Message-ID: <abc@email-operator.invalid>\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "X-SES-CONFIGURATION-SET: notifications\r\n",
    ] {
        assert!(m.contains(header), "{header}: {m}");
    }
    let (head, body) = m.split_once("\r\n\r\n").expect("headers, then body");
    assert!(head.starts_with("From: "));
    for says in [
        "the annotation email.ops.dev/send-test on EmailSettings notifications in namespace billing",
        "Secret notifications-smtp",
        "generation 4",
        "email-smtp.us-east-1.amazonaws.com",
    ] {
        assert!(body.contains(says), "{says}: {body}");
    }
    assert!(
        !m.contains("smtp-pa55word") && !m.contains("AKIAEXAMPLE"),
        "{m}"
    );
    assert!(
        m.split("\r\n").all(|l| !l.contains('\n')),
        "CRLF lines only"
    );
}

#[test]
fn a_test_message_outcome_says_which_check_refused_it_and_what_to_do() {
    use crate::smtp::{ConnectionPath, Sent};
    let secret = ses_secret();
    let via = super::test_message::Via {
        secret: "notifications-smtp",
        generation: secret.generation,
        data: &secret.data,
    };
    let answer = |stage: &'static str, code: u16, text: &str| -> Result<Sent, Failure> {
        Ok(Sent {
            path: ConnectionPath::StartTls,
            port: 587,
            stage,
            code,
            text: text.into(),
        })
    };
    let outcome = |to: &str, r: Result<Sent, Failure>| {
        super::test_message::outcome(Delivery::AdvancedSmtp, to, at(0), &via, &r)
    };

    let accepted = outcome(
        "bounce@simulator.amazonses.com",
        answer("DATA", 250, "Ok 0100019a-abc-000000"),
    );
    assert!(accepted.accepted);
    assert_eq!(accepted.reason, reasons::TEST_MESSAGE_ACCEPTED);
    assert_eq!(accepted.code, Some(250));
    assert_eq!(accepted.message_id.as_deref(), Some("0100019a-abc-000000"));
    assert!(
        accepted.message.contains("hard bounce"),
        "{}",
        accepted.message
    );
    assert_eq!(
        (accepted.secret.as_str(), accepted.generation),
        ("notifications-smtp", Some(4))
    );

    let sandbox = outcome(
        "someone@example.org",
        answer(
            "DATA",
            554,
            "Message rejected: Email address is not verified. The following identities failed the check in region US-EAST-1: someone@example.org",
        ),
    );
    assert!(!sandbox.accepted);
    assert_eq!(
        (sandbox.reason.as_str(), sandbox.code),
        (reasons::TEST_MESSAGE_REFUSED, Some(554))
    );
    for says in [
        "sandbox in us-east-1",
        "verify someone@example.org",
        "simulator",
        "production access",
    ] {
        assert!(
            sandbox.message.contains(says),
            "{says}: {}",
            sandbox.message
        );
    }

    let sender = outcome(
        "ops@yourcompany.com",
        answer(
            "DATA",
            554,
            "Message rejected: Email address is not verified. The following identities failed the check in region US-EAST-1: billing@yourcompany.com",
        ),
    );
    assert!(
        sender.message.contains("sender billing@yourcompany.com"),
        "{}",
        sender.message
    );

    let unknown = outcome(
        "nobody@yourcompany.com",
        answer(
            "RCPT TO",
            550,
            "5.1.1 <nobody@yourcompany.com>: Recipient address rejected: User unknown",
        ),
    );
    assert_eq!(unknown.code, Some(550));
    assert!(
        unknown.message.contains("refused the recipient with 550"),
        "{}",
        unknown.message
    );

    let failed = outcome(
        "ops@yourcompany.com",
        Err(Failure::BadCredentials(
            "535 Authentication Credentials Invalid".into(),
        )),
    );
    assert_eq!(
        (failed.reason.as_str(), failed.code),
        (reasons::BAD_CREDENTIALS, None)
    );
    assert!(!failed.accepted);
}
