//! The pure steps of the SenderIdentity pipeline, with an injected clock: every time window is
//! tested by moving time, never by sleeping.

use super::apply::{Created, create};
use super::status::{Observation, Transition, observed, rejected, track_move, transitions};
use super::step::Recreation;
use super::step::{Facts, Step, Windows, next_step, recheck_after};
use crate::crd::sender_identity::DeletionPolicy;
use crate::crd::sender_identity::{SenderIdentityStatus, SesLocation};
use crate::crd::{SenderIdentity, SenderIdentitySpec};
use crate::names::IdentityName;
use crate::ses::VerificationStatus;
use crate::ses::{IdentityDetails, Owner};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

fn spec(yaml: &str) -> SenderIdentitySpec {
    let si: SenderIdentity = serde_saphyr::from_str(&format!(
        "apiVersion: email.ops.dev/v1alpha1\nkind: SenderIdentity\nmetadata: {{name: x, namespace: billing}}\nspec:\n{yaml}"
    ))
    .expect("SenderIdentity YAML");
    si.spec
}

fn domain_spec() -> SenderIdentitySpec {
    spec(
        "  emailSettingsRef: {name: notifications}\n  identity: yourcompany.com\n  mailFromDomain: bounce.yourcompany.com\n",
    )
}

fn email_spec() -> SenderIdentitySpec {
    spec("  emailSettingsRef: {name: notifications}\n  identity: noreply@yourcompany.com\n")
}

fn me() -> Owner {
    Owner {
        cluster: "c".into(),
        namespace: "billing".into(),
        name: "x".into(),
        deletion_policy: DeletionPolicy::Delete,
    }
}

fn other(name: &str) -> Owner {
    Owner {
        name: name.into(),
        ..me()
    }
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn details(status: &str, owners: &[Owner]) -> IdentityDetails {
    let mut tags = vec![(
        crate::ses::MANAGED_BY_KEY.to_string(),
        crate::ses::MANAGED_BY_VALUE.to_string(),
    )];
    tags.extend(owners.iter().map(|o| (o.tag_key(), o.tag_value())));
    IdentityDetails {
        verification_status: VerificationStatus::from_ses(status),
        dkim_status: Some(VerificationStatus::from_ses(status)),
        dkim_tokens: vec!["t1".into(), "t2".into(), "t3".into()],
        signing_hosted_zone: Some("dkim.amazonses.com".into()),
        verified_for_sending: status == "SUCCESS",
        mail_from_domain: Some("bounce.yourcompany.com".into()),
        mail_from_status: Some(VerificationStatus::from_ses(status)),
        next_key_length: Some("RSA_2048_BIT".into()),
        tags,
    }
}

fn prior(pending_since: Timestamp, attempts: i32) -> SenderIdentityStatus {
    SenderIdentityStatus {
        observed_generation: Some(1),
        pending_since: Some(Time(pending_since)),
        verification_attempts: Some(attempts),
        ..Default::default()
    }
}

struct Case<'a> {
    spec: &'a SenderIdentitySpec,
    details: Option<&'a IdentityDetails>,
    prior: &'a SenderIdentityStatus,
    adopt: bool,
    retry: Option<&'a str>,
    generation: i64,
    now: Timestamp,
}

fn decide(c: Case) -> Step {
    let key = me().tag_key();
    let facts = Facts {
        ses: c.details,
        owner_key: &key,
        adopt: c.adopt,
        may_change: !c.details.is_some_and(|d| crate::ses::is_adopted(&d.tags)),
        is_domain: !c.spec.identity.contains('@'),
        spec: c.spec,
        prior: c.prior,
        retry: c.retry,
        generation: Some(c.generation),
        now: c.now,
    };
    next_step(&facts, &Windows::default())
}

fn case<'a>(
    spec: &'a SenderIdentitySpec,
    details: Option<&'a IdentityDetails>,
    prior: &'a SenderIdentityStatus,
    now: Timestamp,
) -> Case<'a> {
    Case {
        spec,
        details,
        prior,
        adopt: false,
        retry: None,
        generation: 1,
        now,
    }
}

#[test]
fn a_missing_identity_is_created() {
    let s = domain_spec();
    assert_eq!(
        decide(case(&s, None, &SenderIdentityStatus::default(), t0())),
        Step::Create
    );
}

#[test]
fn an_identity_that_is_not_ours_is_left_alone_unless_adopted() {
    let s = domain_spec();
    let p = SenderIdentityStatus::default();
    let mut foreign = details("SUCCESS", &[]);
    foreign.tags = vec![("team".into(), "marketing".into())];
    assert_eq!(decide(case(&s, Some(&foreign), &p, t0())), Step::NotOwned);
    assert_eq!(
        decide(Case {
            adopt: true,
            ..case(&s, Some(&foreign), &p, t0())
        }),
        Step::Claim { adopt: true }
    );
}

#[test]
fn an_identity_of_another_owner_is_shared() {
    let s = domain_spec();
    let d = details("PENDING", &[other("sandbox")]);
    assert_eq!(
        decide(case(&s, Some(&d), &SenderIdentityStatus::default(), t0())),
        Step::Claim { adopt: false }
    );
}

#[test]
fn a_pending_domain_is_recreated_after_72_hours_by_its_first_owner_only() {
    let s = domain_spec();
    let p = prior(t0(), 1);
    let d = details("PENDING", &[me()]);
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0() + hours(71))),
        Step::Observe
    );
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0() + hours(72))),
        Step::Observe
    );
    match decide(case(
        &s,
        Some(&d),
        &p,
        t0() + hours(72) + SignedDuration::from_secs(1),
    )) {
        Step::Recreate { cause, message } => {
            assert_eq!(cause, Recreation::VerificationExpired);
            assert!(message.contains("fresh DKIM tokens"));
        }
        other => panic!("{other:?}"),
    }
    // Shared: only the owner whose tag key sorts first re-creates.
    let mut owners = vec![me(), other("a"), other("b"), other("c")];
    owners.sort_by_key(Owner::tag_key);
    let d = details("PENDING", &owners);
    let first_is_me = owners[0] == me();
    let step = decide(case(&s, Some(&d), &p, t0() + hours(80)));
    assert_eq!(
        matches!(step, Step::Recreate { .. }),
        first_is_me,
        "{step:?}"
    );
}

#[test]
fn an_unconfirmed_email_is_resent_after_24_hours_at_most_three_times() {
    let s = email_spec();
    let d = details("PENDING", &[me()]);
    assert_eq!(
        decide(case(&s, Some(&d), &prior(t0(), 1), t0() + hours(23))),
        Step::Observe
    );
    for attempts in 1..=3 {
        match decide(case(&s, Some(&d), &prior(t0(), attempts), t0() + hours(25))) {
            Step::Recreate { cause, message } => {
                assert_eq!(cause, Recreation::EmailResent);
                assert!(
                    message.contains(&format!("attempt {}", attempts + 1)),
                    "{message}"
                );
            }
            other => panic!("attempt {attempts}: {other:?}"),
        }
    }
    assert_eq!(
        decide(case(&s, Some(&d), &prior(t0(), 4), t0() + hours(25))),
        Step::Observe
    );
    // SES may already report the expired link as Failed: the same bounded re-send applies.
    let failed = details("FAILED", &[me()]);
    assert!(matches!(
        decide(case(&s, Some(&failed), &prior(t0(), 2), t0() + hours(25))),
        Step::Recreate { .. }
    ));
    assert_eq!(
        decide(case(&s, Some(&failed), &prior(t0(), 4), t0() + hours(25))),
        Step::WaitForRetry
    );
}

#[test]
fn a_failed_domain_waits_for_the_retry_annotation_or_a_spec_change() {
    let s = domain_spec();
    let d = details("FAILED", &[me()]);
    let mut p = prior(t0(), 1);
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0() + hours(100))),
        Step::WaitForRetry
    );
    let retried = decide(Case {
        retry: Some("1"),
        ..case(&s, Some(&d), &p, t0() + hours(100))
    });
    assert!(
        matches!(
            retried,
            Step::Recreate {
                cause: Recreation::RetryRequested,
                ..
            }
        ),
        "{retried:?}"
    );
    p.observed_retry = Some("1".into());
    assert_eq!(
        decide(Case {
            retry: Some("1"),
            ..case(&s, Some(&d), &p, t0() + hours(100))
        }),
        Step::WaitForRetry
    );
    let edited = decide(Case {
        generation: 2,
        ..case(&s, Some(&d), &p, t0() + hours(100))
    });
    assert!(matches!(
        edited,
        Step::Recreate {
            cause: Recreation::RetryRequested,
            ..
        }
    ));
}

#[test]
fn mail_from_and_key_length_follow_the_spec() {
    let mut s = domain_spec();
    let d = details("SUCCESS", &[me()]);
    let p = prior(t0(), 1);
    assert_eq!(decide(case(&s, Some(&d), &p, t0())), Step::Observe);
    s.mail_from_domain = Some("mail.yourcompany.com".into());
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0())),
        Step::Configure {
            mail_from: Some(Some("mail.yourcompany.com".into())),
            key_length: None
        }
    );
    s.mail_from_domain = None;
    s.dkim = Some(crate::crd::sender_identity::Dkim {
        key_length: crate::crd::sender_identity::DkimKeyLength::Rsa1024,
    });
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0())),
        Step::Configure {
            mail_from: Some(None),
            key_length: Some("RSA_1024_BIT".into())
        }
    );
}

#[test]
fn the_key_length_changes_at_most_once_a_day() {
    let mut s = domain_spec();
    s.mail_from_domain = Some("bounce.yourcompany.com".into());
    s.dkim = Some(crate::crd::sender_identity::Dkim {
        key_length: crate::crd::sender_identity::DkimKeyLength::Rsa1024,
    });
    let d = details("SUCCESS", &[me()]);
    let mut p = prior(t0(), 1);
    p.dkim_key_length_changed_time = Some(Time(t0()));
    // Within the day of the last change: nothing to do yet.
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0() + hours(23))),
        Step::Observe
    );
    // A day after it: changed.
    assert_eq!(
        decide(case(&s, Some(&d), &p, t0() + hours(24))),
        Step::Configure {
            mail_from: None,
            key_length: Some("RSA_1024_BIT".into())
        }
    );
    // The status says when it can be applied, and the Event warns once.
    let id = IdentityName::parse("yourcompany.com").unwrap();
    let before = observe(&p, &id, &d, t0());
    let w = Windows::default();
    let deferred = observed(
        &before,
        Observation {
            identity: &id,
            details: &d,
            records: vec![],
            location: SesLocation {
                region: "eu-west-1".into(),
                role_arn: None,
            },
            pending_since: None,
            attempts: 1,
            observed_retry: None,
            generation: Some(1),
            now: t0() + hours(1),
            mail_from: None,
            key_length: Some("RSA_1024_BIT"),
            key_length_changed: Some(t0()),
            windows: &w,
        },
    );
    let c = cond(&deferred, "DkimKeyLengthApplied");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "KeyLengthChangeDeferred")
    );
    let allowed = (t0() + hours(24)).to_string();
    assert!(
        c.message.contains("once a day") && c.message.contains(&allowed),
        "{}",
        c.message
    );
}

#[test]
fn a_failed_mail_from_is_a_warning_and_a_retry_puts_it_again() {
    let mut s = domain_spec();
    s.mail_from_domain = Some("bounce.yourcompany.com".into());
    let mut d = details("SUCCESS", &[me()]);
    d.mail_from_status = Some(VerificationStatus::Failed);
    let id = IdentityName::parse("yourcompany.com").unwrap();
    let w = Windows::default();
    fn observation<'a>(
        id: &'a IdentityName,
        d: &'a IdentityDetails,
        w: &'a Windows,
    ) -> Observation<'a> {
        Observation {
            identity: id,
            details: d,
            records: vec![],
            location: SesLocation {
                region: "eu-west-1".into(),
                role_arn: None,
            },
            pending_since: None,
            attempts: 1,
            observed_retry: None,
            generation: Some(1),
            now: t0(),
            mail_from: Some("bounce.yourcompany.com"),
            key_length: None,
            key_length_changed: None,
            windows: w,
        }
    }
    let mut ok = d.clone();
    ok.mail_from_status = Some(VerificationStatus::Success);
    let good = observed(&SenderIdentityStatus::default(), observation(&id, &ok, &w));
    assert_eq!(cond(&good, "MailFromVerified").status, "True");
    let failed = observed(&good, observation(&id, &d, &w));
    let c = cond(&failed, "MailFromVerified");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "MailFromFailed")
    );
    assert!(c.message.contains("SPF"), "{}", c.message);
    assert_eq!(failed.mail_from_status.as_deref(), Some("Failed"));
    // Mail still leaves (from amazonses.com): Ready stays.
    assert_eq!(cond(&failed, "Ready").status, "True");
    let events = transitions(&good, &failed);
    assert_eq!(events.len(), 1);
    assert!(events[0].warning && events[0].reason == "MailFromFailed");

    let p = prior(t0(), 1);
    assert_eq!(decide(case(&s, Some(&d), &p, t0())), Step::Observe);
    let mut retry = case(&s, Some(&d), &p, t0());
    retry.retry = Some("1");
    assert_eq!(
        decide(retry),
        Step::Configure {
            mail_from: Some(Some("bounce.yourcompany.com".into())),
            key_length: None
        }
    );
}

#[test]
fn polling_backs_off_with_age_and_stops_at_the_window() {
    let w = Windows::default();
    let at = |h: f64| t0() + SignedDuration::from_secs_f64(h * 3600.0);
    let after = |status: &str, h: f64, domain: bool| {
        recheck_after(
            VerificationStatus::from_ses(status),
            Some(t0()),
            at(h),
            domain,
            &w,
        )
    };
    assert_eq!(after("PENDING", 0.0, true), Some(Duration::from_secs(30)));
    assert_eq!(after("PENDING", 2.0, true), Some(Duration::from_secs(720)));
    assert_eq!(after("PENDING", 10.0, true), Some(Duration::from_secs(900)));
    // One minute before the 72 h window closes: look again just after it closes.
    assert_eq!(
        after("PENDING", 72.0 - 1.0 / 60.0, true),
        Some(Duration::from_secs(61))
    );
    assert_eq!(
        after("PENDING", 23.99, false),
        Some(Duration::from_secs(37))
    );
    assert_eq!(
        after("SUCCESS", 5.0, true),
        None,
        "verified identities are re-checked in bulk"
    );
    assert_eq!(
        after("TEMPORARY_FAILURE", 5.0, true),
        Some(Duration::from_secs(300))
    );
    assert_eq!(after("FAILED", 5.0, true), None);
}

fn observe(
    prior_status: &SenderIdentityStatus,
    id: &IdentityName,
    d: &IdentityDetails,
    now: Timestamp,
) -> SenderIdentityStatus {
    observed(
        prior_status,
        Observation {
            identity: id,
            details: d,
            records: vec![],
            location: SesLocation {
                region: "eu-west-1".into(),
                role_arn: None,
            },
            pending_since: Some(t0()),
            attempts: 1,
            observed_retry: None,
            generation: Some(1),
            now,
            mail_from: None,
            key_length: None,
            key_length_changed: None,
            windows: &Windows::default(),
        },
    )
}

fn cond<'a>(
    s: &'a SenderIdentityStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition"))
}

#[test]
fn status_follows_ses_and_keeps_transition_times() {
    let id = IdentityName::parse("yourcompany.com").unwrap();
    let pending = observe(
        &SenderIdentityStatus::default(),
        &id,
        &details("PENDING", &[me()]),
        t0(),
    );
    assert_eq!(pending.verification_status.as_deref(), Some("Pending"));
    assert_eq!(pending.dkim_status.as_deref(), Some("Pending"));
    assert_eq!(cond(&pending, "Accepted").status, "True");
    assert_eq!(
        (
            cond(&pending, "Verified").status.as_str(),
            cond(&pending, "Verified").reason.as_str()
        ),
        ("False", "Pending")
    );
    assert_eq!(cond(&pending, "Ready").status, "False");
    assert_eq!(pending.pending_since, Some(Time(t0())));

    let later = t0() + hours(1);
    let still = observe(&pending, &id, &details("PENDING", &[me()]), later);
    assert_eq!(cond(&still, "Ready").last_transition_time, Time(t0()));
    assert_eq!(still.last_checked_time, Some(Time(later)));

    let done = observe(&still, &id, &details("SUCCESS", &[me()]), later);
    for t in ["Verified", "DkimVerified", "Ready"] {
        assert_eq!(cond(&done, t).status, "True", "{t}");
        assert_eq!(cond(&done, t).last_transition_time, Time(later));
    }
    assert_eq!(done.pending_since, None);
    assert_eq!(
        done.ses.as_ref().map(|l| l.region.as_str()),
        Some("eu-west-1")
    );

    let email = IdentityName::parse("noreply@yourcompany.com").unwrap();
    let mut d = details("SUCCESS", &[me()]);
    d.dkim_status = Some(VerificationStatus::NotStarted);
    let e = observe(&SenderIdentityStatus::default(), &email, &d, t0());
    assert_eq!(
        cond(&e, "Ready").status,
        "True",
        "an email identity needs no DKIM of its own"
    );
    assert_eq!(cond(&e, "DkimVerified").reason, "NotApplicable");

    let r = rejected(
        &done,
        "LimitExceeded",
        "held by SenderIdentity first",
        Some(2),
        later,
    );
    assert_eq!(
        (
            cond(&r, "Accepted").status.as_str(),
            cond(&r, "Accepted").reason.as_str()
        ),
        ("False", "LimitExceeded")
    );
    assert_eq!(cond(&r, "Ready").status, "False");
    assert_eq!(
        r.verification_status.as_deref(),
        Some("Success"),
        "what SES reported is kept"
    );
}

#[test]
fn status_names_round_trip() {
    for (ses, shown) in [
        ("PENDING", "Pending"),
        ("TEMPORARY_FAILURE", "TemporaryFailure"),
        ("NOT_STARTED", "NotStarted"),
        ("SUCCESS", "Success"),
        ("FAILED", "Failed"),
    ] {
        let status = VerificationStatus::from_ses(ses);
        assert_eq!(status.shown(), shown);
        assert_eq!(status.as_ses(), ses);
        assert_eq!(VerificationStatus::from_shown(shown), Some(status));
    }
    // A value SES may add later concludes nothing.
    assert_eq!(
        VerificationStatus::from_ses("SOMETHING_NEW"),
        VerificationStatus::NotStarted
    );
}

#[test]
fn a_domain_lifecycle_is_told_in_one_event_per_change() {
    let id = IdentityName::parse("yourcompany.com").unwrap();
    let none = SenderIdentityStatus::default();
    let pending = observe(&none, &id, &details("PENDING", &[me()]), t0());
    // First look: pending, a routine step (its creation had an Event of its own); Accepted
    // True is no news either.
    assert_eq!(transitions(&none, &pending), vec![]);
    // Nothing changed: no Event.
    let again = observe(&pending, &id, &details("PENDING", &[me()]), t0() + hours(1));
    assert_eq!(transitions(&pending, &again), vec![]);
    // Verified: one Event, naming Verified and DkimVerified too.
    let mut ok = details("SUCCESS", &[me()]);
    ok.dkim_status = Some(VerificationStatus::Success);
    let verified = observe(&again, &id, &ok, t0() + hours(2));
    let done = transitions(&again, &verified);
    assert_eq!(
        done,
        vec![Transition {
            warning: false,
            reason: "Ready".into(),
            note: "Ready is True: mail may be sent from yourcompany.com; Verified is True (Success); DkimVerified is True (Success)".into(),
        }]
    );
    // A failure is a warning.
    let failed = observe(&pending, &id, &details("FAILED", &[me()]), t0() + hours(3));
    let bad = transitions(&pending, &failed);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].warning);
    assert_eq!(bad[0].reason, "Failed");
}

#[test]
fn a_rejection_is_one_warning() {
    let none = SenderIdentityStatus::default();
    let no = rejected(
        &none,
        "LimitExceeded",
        "at most 3 email identities",
        Some(1),
        t0(),
    );
    let events = transitions(&none, &no);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].warning);
    assert_eq!(events[0].reason, "LimitExceeded");
    assert!(
        events[0].note.contains("Accepted is False (LimitExceeded)"),
        "{}",
        events[0].note
    );
}

fn at(region: &str) -> SesLocation {
    SesLocation {
        region: region.into(),
        role_arn: None,
    }
}

#[test]
fn a_move_remembers_where_the_identity_was_until_it_is_released() {
    let mut st = SenderIdentityStatus {
        ses: Some(at("us-east-1")),
        verified_for_sending: Some(true),
        pending_since: Some(Time(Timestamp::UNIX_EPOCH)),
        verification_attempts: Some(2),
        ..Default::default()
    };
    track_move(&mut st, &at("us-east-1"));
    assert!(st.former_locations.is_empty(), "not a move");
    assert_eq!(st.verification_attempts, Some(2));

    track_move(&mut st, &at("eu-west-1"));
    assert_eq!(st.former_locations, [at("us-east-1")]);
    assert_eq!(st.pending_since, None, "the lifecycle starts afresh");
    assert_eq!(st.verification_attempts, None);

    // Moved again before the new one verified: both are held until then.
    st.ses = Some(at("eu-west-1"));
    track_move(&mut st, &at("ap-southeast-2"));
    assert_eq!(st.former_locations, [at("us-east-1"), at("eu-west-1")]);

    // Moved back: where it is now is not a former location.
    st.ses = Some(at("ap-southeast-2"));
    track_move(&mut st, &at("us-east-1"));
    assert_eq!(st.former_locations, [at("eu-west-1"), at("ap-southeast-2")]);

    // Another role in the same region is another location.
    let mut role = at("us-east-1");
    role.role_arn = Some("arn:aws:iam::123456789012:role/ses".into());
    st.ses = Some(at("us-east-1"));
    st.former_locations.clear();
    track_move(&mut st, &role);
    assert_eq!(st.former_locations, [at("us-east-1")]);
}

/// An SES whose CreateEmailIdentity answers as told, recording the operations called.
struct Recorder {
    create: Result<Option<IdentityDetails>, crate::ses::SesError>,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl Recorder {
    fn new(create: Result<Option<IdentityDetails>, crate::ses::SesError>) -> Self {
        Self {
            create,
            calls: Default::default(),
        }
    }

    fn called(&self, op: &'static str) {
        self.calls.lock().expect("lock").push(op);
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().expect("lock").clone()
    }
}

impl crate::ses::SesApi for Recorder {
    async fn create_identity(
        &self,
        _: &str,
        _: &[(String, String)],
        _: Option<&str>,
    ) -> Result<Option<IdentityDetails>, crate::ses::SesError> {
        self.called("CreateEmailIdentity");
        self.create.clone()
    }
    async fn get_identity(&self, _: &str) -> Result<IdentityDetails, crate::ses::SesError> {
        self.called("GetEmailIdentity");
        Ok(IdentityDetails {
            verification_status: VerificationStatus::Success,
            ..Default::default()
        })
    }
    async fn list_identities(
        &self,
        _: Option<String>,
    ) -> Result<(Vec<crate::ses::ListedIdentity>, Option<String>), crate::ses::SesError> {
        self.called("ListEmailIdentities");
        Ok((vec![], None))
    }
    async fn delete_identity(&self, _: &str) -> Result<(), crate::ses::SesError> {
        self.called("DeleteEmailIdentity");
        Ok(())
    }
    async fn tag_identity(
        &self,
        _: &str,
        _: &[(String, String)],
    ) -> Result<(), crate::ses::SesError> {
        self.called("TagResource");
        Ok(())
    }
    async fn untag_identity(&self, _: &str, _: &[String]) -> Result<(), crate::ses::SesError> {
        self.called("UntagResource");
        Ok(())
    }
    async fn put_mail_from(&self, _: &str, _: Option<&str>) -> Result<(), crate::ses::SesError> {
        self.called("PutEmailIdentityMailFromAttributes");
        Ok(())
    }
    async fn put_dkim_key_length(&self, _: &str, _: &str) -> Result<(), crate::ses::SesError> {
        self.called("PutEmailIdentityDkimSigningAttributes");
        Ok(())
    }
    async fn get_account(&self) -> Result<crate::ses::AccountStanding, crate::ses::SesError> {
        self.called("GetAccount");
        Ok(crate::ses::AccountStanding::production())
    }
}

/// Creates the domain `yourcompany.com` with a MAIL FROM domain.
async fn create_with_mail_from(ses: &Recorder) -> Result<Created, super::Error> {
    create(
        ses,
        "yourcompany.com",
        &[],
        None,
        Some("bounce.yourcompany.com"),
    )
    .await
}

#[tokio::test]
async fn an_identity_found_already_there_when_creating_is_only_read() {
    // Created between our read and our create, perhaps by someone else: it is not configured.
    // (The next reconcile reads it, and its tags decide whether to share or leave it.)
    let ses = Recorder::new(Err(crate::ses::SesError::AlreadyExists));
    let created = create_with_mail_from(&ses).await.expect("no error");
    assert_eq!(ses.calls(), ["CreateEmailIdentity"]);
    assert!(matches!(created, Created::AlreadyThere), "{created:?}");

    // Created by us: configured, and described by the create's answer (no read).
    let answer = IdentityDetails {
        verification_status: VerificationStatus::Pending,
        dkim_tokens: vec!["a".into(), "b".into(), "c".into()],
        ..Default::default()
    };
    let ses = Recorder::new(Ok(Some(answer)));
    let Created::New(Some(details)) = create_with_mail_from(&ses).await.expect("created") else {
        panic!("created, with its details");
    };
    assert_eq!(
        ses.calls(),
        ["CreateEmailIdentity", "PutEmailIdentityMailFromAttributes"]
    );
    assert_eq!(
        details.mail_from_domain.as_deref(),
        Some("bounce.yourcompany.com")
    );
    assert_eq!(details.dkim_tokens.len(), 3);

    // An answer without what the status shows: read.
    let ses = Recorder::new(Ok(None));
    create(&ses, "yourcompany.com", &[], None, None)
        .await
        .expect("read");
    assert_eq!(ses.calls(), ["CreateEmailIdentity", "GetEmailIdentity"]);
}

#[test]
fn only_a_sole_owner_of_its_namespace_and_cluster_may_change_an_identity() {
    use super::apply::may_change;
    let me = crate::ses::Owner {
        cluster: "prod".into(),
        namespace: "billing".into(),
        name: "yourcompany-com".into(),
        deletion_policy: Default::default(),
    };
    let other = |cluster: &str, ns: &str, name: &str| {
        let o = crate::ses::Owner {
            cluster: cluster.into(),
            namespace: ns.into(),
            name: name.into(),
            deletion_policy: Default::default(),
        };
        (o.tag_key(), o.tag_value())
    };
    let with = |extra: Vec<(String, String)>| IdentityDetails {
        tags: [me.creation_tags(), extra].concat(),
        ..Default::default()
    };
    let key = me.tag_key();
    assert!(may_change(None, &key, &me), "nothing there yet");
    assert!(may_change(Some(&with(vec![])), &key, &me), "sole owner");
    assert!(
        may_change(
            Some(&with(vec![other("prod", "billing", "second")])),
            &key,
            &me
        ),
        "its own namespace's other claim"
    );
    assert!(!may_change(
        Some(&with(vec![other("prod", "shop", "x")])),
        &key,
        &me
    ));
    assert!(!may_change(
        Some(&with(vec![other("staging", "billing", "x")])),
        &key,
        &me
    ));
    let adopted = with(vec![(crate::ses::ADOPTED_KEY.into(), "true".into())]);
    assert!(!may_change(Some(&adopted), &key, &me), "adopted");

    // Shared with another namespace: no re-creation, no retry, no reconfiguration.
    let spec = domain_spec();
    let details = IdentityDetails {
        verification_status: VerificationStatus::Failed,
        ..with(vec![other("prod", "shop", "x")])
    };
    let prior = SenderIdentityStatus::default();
    let facts = Facts {
        ses: Some(&details),
        owner_key: &key,
        adopt: false,
        may_change: false,
        is_domain: true,
        spec: &spec,
        prior: &prior,
        retry: Some("1"),
        generation: Some(1),
        now: Timestamp::UNIX_EPOCH,
    };
    assert_eq!(next_step(&facts, &Windows::default()), Step::WaitForRetry);
    let pending = IdentityDetails {
        verification_status: VerificationStatus::Pending,
        ..details.clone()
    };
    let old = SenderIdentityStatus {
        pending_since: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::UNIX_EPOCH,
        )),
        ..Default::default()
    };
    let facts = Facts {
        ses: Some(&pending),
        prior: &old,
        retry: None,
        now: Timestamp::from_second(100 * 3600).expect("time"),
        ..facts
    };
    assert_eq!(
        next_step(&facts, &Windows::default()),
        Step::Observe,
        "no re-creation after 72 h"
    );
}
