//! Policy tests, fed with YAML as a platform team writes it.

use super::*;
use crate::crd::conditions::reasons;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

fn settings(yaml: &str) -> EmailSettings {
    serde_saphyr::from_str(yaml).expect("EmailSettings YAML")
}

/// The source's example tenant: one active user, employee@yourcompany.com.
fn tenant() -> EmailSettings {
    settings(
        r#"
apiVersion: email.ops.dev/v1alpha1
kind: EmailSettings
metadata: {name: notifications, namespace: billing}
spec:
  from: billing@yourcompany.com
  delivery: AdvancedSmtp
  activeUsers: [employee@yourcompany.com]
  advancedSmtp: {region: us-east-1}
"#,
    )
}

/// A SenderIdentity created `age` seconds after the epoch (None: not created yet, as in plan).
fn sid(name: &str, identity: &str, created: Option<i64>) -> SenderIdentity {
    let mut si: SenderIdentity = serde_saphyr::from_str(&format!(
        "apiVersion: email.ops.dev/v1alpha1\nkind: SenderIdentity\nmetadata: {{name: {name}, namespace: billing}}\nspec:\n  emailSettingsRef: {{name: notifications}}\n  identity: {identity}\n"
    ))
    .expect("SenderIdentity YAML");
    si.metadata.creation_timestamp =
        created.map(|s| Time(Timestamp::from_second(s).expect("timestamp")));
    si
}

fn reason(v: &Verdict) -> &'static str {
    match v {
        Verdict::Admitted(_) => "Admitted",
        Verdict::Rejected { reason, .. } => reason,
    }
}

fn message(v: &Verdict) -> &str {
    match v {
        Verdict::Admitted(_) => "",
        Verdict::Rejected { message, .. } => message,
    }
}

fn decide_all(ids: &[SenderIdentity]) -> BTreeMap<String, Verdict> {
    decide("notifications", Some(&tenant()), ids)
}

#[test]
fn source_examples_of_valid_identities_are_admitted_one_at_a_time() {
    for identity in [
        "yourcompany.com",
        "en.yourcompany.com",
        "contact@yourcompany.com",
        "employee@yourcompany.com",
        "noreply@en.yourcompany.com",
        "YourCompany.COM",
    ] {
        let v = decide_all(&[sid("x", identity, Some(1))]);
        assert!(v["x"].is_admitted(), "{identity}: {:?}", v["x"]);
    }
}

#[test]
fn identities_outside_active_user_domains_are_rejected() {
    for identity in [
        "othercompany.com",
        "notyourcompany.com",
        "yourcompany.com.evil.io",
        "contact@othercompany.com",
        "employee@yourcompany.co",
    ] {
        let v = decide_all(&[sid("x", identity, Some(1))]);
        assert_eq!(
            reason(&v["x"]),
            reasons::NOT_AN_ACTIVE_USER_DOMAIN,
            "{identity}"
        );
    }
    let v = decide_all(&[sid("x", "com", Some(1))]);
    assert_eq!(reason(&v["x"]), reasons::INVALID);
    let v = decide_all(&[sid("x", "othercompany.com", Some(1))]);
    assert!(message(&v["x"]).contains("othercompany.com"));
    assert!(message(&v["x"]).contains("active user domains: yourcompany.com"));
}

#[test]
fn settings_without_active_users_admit_nothing() {
    let mut es = tenant();
    es.spec.active_users.clear();
    let v = decide(
        "notifications",
        Some(&es),
        &[sid("x", "yourcompany.com", Some(1))],
    );
    assert_eq!(reason(&v["x"]), reasons::NOT_AN_ACTIVE_USER_DOMAIN);
    assert!(message(&v["x"]).contains("lists no activeUsers"));
}

#[test]
fn one_domain_identity_per_settings_the_oldest_wins() {
    let v = decide_all(&[
        sid("second", "en.yourcompany.com", Some(20)),
        sid("first", "yourcompany.com", Some(10)),
    ]);
    assert!(v["first"].is_admitted());
    assert_eq!(reason(&v["second"]), reasons::LIMIT_EXCEEDED);
    assert_eq!(
        message(&v["second"]),
        "EmailSettings notifications may have at most 1 domain identity; held by SenderIdentity first (yourcompany.com)"
    );
}

#[test]
fn three_email_identities_per_settings_the_fourth_is_rejected_naming_the_holders() {
    let v = decide_all(&[
        sid("a", "a@yourcompany.com", Some(1)),
        sid("b", "b@yourcompany.com", Some(2)),
        sid("c", "c@en.yourcompany.com", Some(3)),
        sid("d", "d@yourcompany.com", Some(4)),
    ]);
    assert!(["a", "b", "c"].iter().all(|n| v[*n].is_admitted()));
    assert_eq!(reason(&v["d"]), reasons::LIMIT_EXCEEDED);
    let m = message(&v["d"]);
    assert!(m.contains("at most 3 email identities"), "{m}");
    for holder in [
        "a (a@yourcompany.com)",
        "b (b@yourcompany.com)",
        "c (c@en.yourcompany.com)",
    ] {
        assert!(m.contains(holder), "{m} should name {holder}");
    }
    assert_eq!(
        Usage::of(&v),
        Usage {
            domains: 0,
            emails: 3
        }
    );
}

#[test]
fn a_domain_and_an_email_identity_may_not_share_a_domain() {
    // Email first, then the domain: the domain identity is the one rejected.
    let v = decide_all(&[
        sid("contact", "contact@yourcompany.com", Some(1)),
        sid("domain", "yourcompany.com", Some(2)),
    ]);
    assert!(v["contact"].is_admitted());
    assert_eq!(reason(&v["domain"]), reasons::DOMAIN_CONFLICT);
    assert!(message(&v["domain"]).contains("SenderIdentity contact (contact@yourcompany.com)"));

    // Domain first: the email identity of the same domain is rejected, a subdomain's is not.
    let v = decide_all(&[
        sid("domain", "yourcompany.com", Some(1)),
        sid("contact", "contact@yourcompany.com", Some(2)),
        sid("noreply", "noreply@en.yourcompany.com", Some(3)),
    ]);
    assert!(v["domain"].is_admitted());
    assert_eq!(reason(&v["contact"]), reasons::DOMAIN_CONFLICT);
    assert!(v["noreply"].is_admitted());
    assert_eq!(
        Usage::of(&v),
        Usage {
            domains: 1,
            emails: 1
        }
    );
}

#[test]
fn the_same_identity_twice_is_a_duplicate() {
    let v = decide_all(&[
        sid("one", "Contact@yourcompany.com", Some(1)),
        sid("two", "Contact@yourcompany.com", Some(2)),
        sid("three", "contact@YourCompany.com", Some(3)),
    ]);
    assert!(v["one"].is_admitted());
    assert_eq!(reason(&v["two"]), reasons::DUPLICATE_IDENTITY);
    assert!(message(&v["two"]).contains("SenderIdentity one"));
    // SES tells email addresses apart by case: another identity, with its own slot.
    assert!(v["three"].is_admitted());
    // Domains are case-insensitive.
    let v = decide_all(&[
        sid("one", "yourcompany.com", Some(1)),
        sid("two", "YourCompany.COM", Some(2)),
    ]);
    assert_eq!(reason(&v["two"]), reasons::DUPLICATE_IDENTITY);
}

#[test]
fn rejected_identities_hold_no_slot() {
    let v = decide_all(&[
        sid("outsider", "othercompany.com", Some(1)),
        sid("ours", "yourcompany.com", Some(2)),
    ]);
    assert_eq!(reason(&v["outsider"]), reasons::NOT_AN_ACTIVE_USER_DOMAIN);
    assert!(v["ours"].is_admitted());
}

#[test]
fn admission_is_stable_under_reapplication_in_any_order() {
    let ids = vec![
        sid("d1", "yourcompany.com", Some(5)),
        sid("d2", "de.yourcompany.com", Some(5)),
        sid("e1", "a@en.yourcompany.com", Some(3)),
        sid("e2", "b@en.yourcompany.com", Some(3)),
        sid("e3", "c@en.yourcompany.com", Some(9)),
        sid("e4", "d@en.yourcompany.com", Some(1)),
        sid("e5", "e@yourcompany.com", Some(7)),
    ];
    let expected = decide_all(&ids);
    // Same timestamp → name decides: d1 before d2.
    assert!(expected["d1"].is_admitted());
    assert_eq!(reason(&expected["d2"]), reasons::LIMIT_EXCEEDED);
    // e4 (t=1), e1, e2 (t=3) are the oldest three; e5 conflicts with d1 anyway.
    assert!(
        ["e4", "e1", "e2"]
            .iter()
            .all(|n| expected[*n].is_admitted())
    );
    assert_eq!(reason(&expected["e3"]), reasons::LIMIT_EXCEEDED);
    assert_eq!(reason(&expected["e5"]), reasons::DOMAIN_CONFLICT);
    // Every rotation and the reverse give the same verdicts.
    for k in 0..ids.len() {
        let mut rotated = ids.clone();
        rotated.rotate_left(k);
        assert_eq!(decide_all(&rotated), expected, "rotation {k}");
        rotated.reverse();
        assert_eq!(decide_all(&rotated), expected, "reversed rotation {k}");
    }
}

#[test]
fn existing_objects_keep_their_slots_over_new_manifests() {
    let v = decide_all(&[
        sid("aaa-new", "yourcompany.com", None),
        sid("zzz-existing", "en.yourcompany.com", Some(100)),
    ]);
    assert!(v["zzz-existing"].is_admitted());
    assert_eq!(reason(&v["aaa-new"]), reasons::LIMIT_EXCEEDED);
}

#[test]
fn deleting_the_holder_promotes_the_next_in_line() {
    let holder = sid("holder", "yourcompany.com", Some(1));
    let next = sid("next", "en.yourcompany.com", Some(2));
    let last = sid("last", "de.yourcompany.com", Some(3));
    let v = decide_all(&[holder.clone(), next.clone(), last.clone()]);
    assert!(v["holder"].is_admitted());
    assert_eq!(reason(&v["next"]), reasons::LIMIT_EXCEEDED);

    // Being deleted (finalizer still pending) already frees the slot…
    let mut deleting = holder.clone();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let v = decide_all(&[deleting, next.clone(), last.clone()]);
    assert!(!v.contains_key("holder"));
    assert!(v["next"].is_admitted());
    assert_eq!(reason(&v["last"]), reasons::LIMIT_EXCEEDED);
    assert!(message(&v["last"]).contains("SenderIdentity next"));

    // …and so does being gone.
    let v = decide_all(&[next, last]);
    assert!(v["next"].is_admitted());
}

#[test]
fn missing_or_non_ses_settings_reject_everything() {
    let v = decide(
        "notifications",
        None,
        &[sid("x", "yourcompany.com", Some(1))],
    );
    assert_eq!(reason(&v["x"]), reasons::EMAIL_SETTINGS_NOT_FOUND);
    assert!(message(&v["x"]).contains("EmailSettings notifications does not exist"));

    let mut es = tenant();
    es.spec.advanced_smtp = None;
    let v = decide(
        "notifications",
        Some(&es),
        &[sid("x", "yourcompany.com", Some(1))],
    );
    assert_eq!(reason(&v["x"]), reasons::SES_NOT_CONFIGURED);
}

#[test]
fn identities_of_other_settings_are_not_counted() {
    let mut other = sid("other", "yourcompany.com", Some(1));
    other.spec.email_settings_ref.name = "marketing".into();
    let v = decide_all(&[other, sid("mine", "yourcompany.com", Some(2))]);
    assert!(!v.contains_key("other"));
    assert!(v["mine"].is_admitted());
}

#[test]
fn coverage_follows_the_sending_rules() {
    let from = |s: &str| EmailAddress::parse(s).unwrap();
    let id = |s: &str| IdentityName::parse(s).unwrap();
    // A verified email identity covers exactly that address.
    assert!(covers(
        &id("contact@yourcompany.com"),
        &from("contact@yourcompany.com")
    ));
    assert!(!covers(
        &id("contact@yourcompany.com"),
        &from("employee@yourcompany.com")
    ));
    // A verified domain identity covers the domain and its subdomains.
    for addr in [
        "contact@yourcompany.com",
        "employee@yourcompany.com",
        "noreply@en.yourcompany.com",
    ] {
        assert!(covers(&id("yourcompany.com"), &from(addr)), "{addr}");
        assert!(dmarc_aligned(&id("yourcompany.com"), &from(addr)), "{addr}");
    }
    assert!(!covers(
        &id("en.yourcompany.com"),
        &from("noreply@yourcompany.com")
    ));
    // An email identity never gives own-domain DKIM.
    assert!(!dmarc_aligned(
        &id("contact@yourcompany.com"),
        &from("contact@yourcompany.com")
    ));
}

#[test]
fn two_settings_may_not_publish_the_same_secret() {
    let mut a = tenant();
    a.spec.output_secret_name = Some("smtp".into());
    a.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
    let mut b = tenant();
    b.metadata.name = Some("marketing".into());
    b.spec.output_secret_name = Some("smtp".into());
    b.metadata.creation_timestamp = Some(Time(Timestamp::from_second(2).unwrap()));
    let mut c = tenant();
    c.metadata.name = Some("other".into()); // default name other-smtp: no conflict
    let rejected = output_secret_conflicts(&[b, a, c]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        reason(&rejected["marketing"]),
        reasons::OUTPUT_SECRET_CONFLICT
    );
    assert!(message(&rejected["marketing"]).contains("EmailSettings notifications"));
}
