//! Step 3 of an EmailSettings' reconcile: the only step that tests connections or writes to
//! Kubernetes — the connection test when [`super::decide::test_step`] says it is due, the
//! output Secret when [`super::decide::publication_of`] says so, the status and its Events.

use super::Error;
use super::decide::{self, Memo, Publication, TestStep};
use super::dereference::Read;
use super::publish;
use super::status::{self, Test};
use crate::controller::backends::Backends;
use crate::controller::{Context, FIELD_MANAGER, apply_status};
use crate::crd::conditions::reasons;
use crate::crd::{EmailSettings, EmailSettingsStatus};
use crate::smtp::ConnectionTest;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

/// Sends the test message the annotation asks for, when one is due and a configuration is
/// published: through the published Secret as it is (not one this reconcile just rewrote —
/// the next reconcile sends through that), with an Event. None when nothing is sent now.
/// `prior`: the status the reconcile started from (its last test message).
pub async fn send_test<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    read: &Read,
    prior: &EmailSettingsStatus,
    published_generation: Option<i64>,
    now: Timestamp,
) -> Option<crate::crd::email_settings::TestMessage> {
    use super::test_message::{self, Via};
    let recipient = test_message::requested(es, prior)?;
    let published = read.published.as_ref()?;
    if published.generation != published_generation {
        return None;
    }
    let secret = es.output_secret_name();
    let via = Via {
        secret: &secret,
        generation: published.generation,
        data: &published.data,
    };
    // The trust the connection test has (the Secret holds no CA), and whether the host is the
    // tenant's (then only where egress allows).
    let (ca, restricted) = match &read.subject {
        Ok(s) => (
            s.prepared.target.ca_bundle_pem.clone(),
            s.prepared.target.restricted,
        ),
        Err(_) => (None, true),
    };
    let outcome = if crate::names::EmailAddress::parse(&recipient).is_err() {
        test_message::not_sent(
            &recipient,
            now,
            &via,
            reasons::INVALID_RECIPIENT,
            format!(
                "{recipient} is not an email address; set {} to one",
                crate::controller::SEND_TEST_ANNOTATION
            ),
        )
    } else {
        match crate::smtp::target::published(&published.data, ca, restricted) {
            Err(why) => test_message::not_sent(
                &recipient,
                now,
                &via,
                reasons::PUBLISHED_SECRET_UNREADABLE,
                format!("Secret {secret} {why}; nothing was sent"),
            ),
            Ok(prepared) => {
                let (namespace, name) = (read.namespace.as_str(), es.name_any());
                let origin = test_message::Origin::annotation(namespace, &name);
                let letter = test_message::letter(&origin, &via, &recipient, now, &nonce());
                let result = ctx.backends.tester().send(&prepared, &letter).await;
                test_message::outcome(es.spec.delivery, &recipient, now, &via, &result)
            }
        }
    };
    tracing::info!(
        recipient = %outcome.recipient,
        accepted = outcome.accepted,
        reason = %outcome.reason,
        "test message"
    );
    ctx.event(
        es,
        !outcome.accepted,
        &outcome.reason,
        format!("test message to {}: {}", outcome.recipient, outcome.message),
    )
    .await;
    Some(outcome)
}

/// A random token for a Message-ID.
fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the connection test when [`decide::test_step`] says it is due, and records it. Also
/// whether its inputs were tested for the first time (their provider hints are then worth an
/// Event).
pub async fn test<B: Backends>(
    ctx: &Context<B>,
    read: &Read,
    step: TestStep,
    now: Timestamp,
) -> (Test, bool) {
    let (s, fingerprint, revalidate) = match (step, &read.subject) {
        (TestStep::Known(test), _) => return (test, false),
        (_, Err(problem)) => return (Test::Unavailable(problem.clone()), false),
        (
            TestStep::Run {
                fingerprint,
                revalidate,
            },
            Ok(s),
        ) => (s, fingerprint, revalidate),
    };
    let started = std::time::Instant::now();
    let result = ctx.backends.tester().test(&s.prepared).await;
    let duration = started.elapsed();
    let outcome = result
        .as_ref()
        .map_or_else(|f| f.reason(), |_| reasons::SUCCEEDED);
    crate::metrics::smtp_test(outcome);
    tracing::info!(
        outcome,
        duration_ms = duration.as_millis() as u64,
        "connection test"
    );
    let memo = read.memo.as_ref();
    let fresh = memo.is_none_or(|m| m.fingerprint != fingerprint);
    let m = Memo::record(memo, &fingerprint, now, duration, result);
    let next = decide::next(now, &fingerprint, Some(&m), None, revalidate);
    ctx.memory.tests.set(&read.uid, m);
    (Test::Known(next), fresh)
}

/// Writes the output Secret when [`decide::publication_of`] decided to. Returns the generation
/// the Secret now holds, or `Err(action)` to come back before deciding anything.
pub async fn publish<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    read: &Read,
    publication: Publication,
) -> Result<Result<Option<i64>, Action>, Error> {
    let published_generation = read.published.as_ref().and_then(|p| p.generation);
    let Publication::Write {
        data,
        at,
        fingerprint,
    } = publication
    else {
        return Ok(Ok(published_generation));
    };
    let generation = es.metadata.generation.unwrap_or_default();
    let out_name = es.output_secret_name();
    // Absent by the watch: make sure before writing. A Secret someone created a moment ago (the
    // watch lagging) is not ours to overwrite; its watch event brings this EmailSettings back
    // to judge it.
    if read.existing.is_none()
        && ctx
            .secrets
            .get(&ctx.client, &read.namespace, &out_name)
            .await?
            .is_some()
    {
        return Ok(Err(Action::requeue(decide::SECRET_APPEARED_RECHECK)));
    }
    write_secret(es, ctx, &data, generation, at, &fingerprint).await?;
    if read.published.as_ref().is_none_or(|p| p.data != data) {
        let note = format!(
            "published the configuration validated for generation {generation} to Secret {out_name}"
        );
        ctx.event(es, false, reasons::PUBLISHED, note).await;
    }
    Ok(Ok(Some(generation)))
}

async fn write_secret<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    data: &std::collections::BTreeMap<String, String>,
    generation: i64,
    at: Timestamp,
    fingerprint: &str,
) -> Result<(), Error> {
    let manifest = publish::manifest(es, data, generation, at, fingerprint);
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let written = secrets
        .patch(
            &es.output_secret_name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await?;
    ctx.secrets.remember(&written);
    Ok(())
}

/// Writes the new status when it changed, and the Events its transitions are worth.
pub async fn write_status<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    read: &Read,
    prior: &EmailSettingsStatus,
    new: &EmailSettingsStatus,
) -> Result<(), Error> {
    if new != prior {
        let api: Api<EmailSettings> = Api::namespaced(ctx.client.clone(), &read.namespace);
        apply_status(&api, es, new).await?;
        ctx.wrote_status(&read.uid, new);
    }
    for t in status::transitions(prior, new) {
        ctx.event(es, t.warning, &t.reason, t.message).await;
    }
    Ok(())
}
