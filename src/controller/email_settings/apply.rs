//! Step 3 of an EmailSettings' reconcile: the only step that tests connections or writes to
//! Kubernetes — the connection test when [`super::decide`] says it is due, the output Secret
//! when [`super::decide::publication`] says so, the status and its Events.

use super::Error;
use super::decide::{self, Memo, Next, Publication};
use super::dereference::Read;
use super::publish;
use super::status::Test;
use crate::controller::backends::Backends;
use crate::controller::{Context, FIELD_MANAGER, apply_status};
use crate::crd::conditions::{reasons, types};
use crate::crd::{EmailSettings, EmailSettingsStatus};
use crate::smtp::ConnectionTest;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

/// Where the test stands now, running it when it is due. Also whether its inputs were tested
/// for the first time (their provider hints are then worth an Event).
pub async fn test<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    read: &Read,
    now: Timestamp,
) -> (Test, bool) {
    let s = match &read.subject {
        Err(problem) => return (Test::Unavailable(problem.clone()), false),
        Ok(s) => s,
    };
    let fingerprint = publish::fingerprint(&s.prepared, &s.extra);
    let revalidate = decide::revalidate_every(es.spec.revalidate_every.as_deref());
    let memo = read.memo.as_ref();
    let next = decide::next(now, &fingerprint, memo, read.published.as_ref(), revalidate);
    if next != Next::Test {
        return (Test::Known(next), false);
    }
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
    let fresh = memo.is_none_or(|m| m.fingerprint != fingerprint);
    let m = Memo::record(memo, &fingerprint, now, duration, result);
    let next = decide::next(now, &fingerprint, Some(&m), None, revalidate);
    ctx.memory.tests.set(&read.uid, m);
    (Test::Known(next), fresh)
}

/// Publishes the validated configuration when [`decide::publication`] says so. Returns the
/// generation the Secret now holds, or `Err(action)` to come back before deciding anything.
pub async fn publish<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    read: &Read,
    test: &Test,
) -> Result<Result<Option<i64>, Action>, Error> {
    let published_generation = read.published.as_ref().and_then(|p| p.generation);
    let Ok(s) = &read.subject else {
        return Ok(Ok(published_generation));
    };
    let generation = es.metadata.generation.unwrap_or_default();
    let fingerprint = publish::fingerprint(&s.prepared, &s.extra);
    let passed = match test {
        Test::Known(Next::Passed { at, outcome, .. }) => Some((
            *at,
            outcome
                .as_ref()
                .map(|o| publish::data(&s.prepared, o, &s.extra)),
        )),
        _ => None,
    };
    let sender_covered = read
        .senders
        .as_ref()
        .is_none_or(|s| s.sender_verified.is_some());
    let Publication::Write { data, at } = decide::publication(
        passed,
        read.publish_problem.is_none(),
        sender_covered,
        read.published.as_ref(),
        generation,
        &fingerprint,
    ) else {
        return Ok(Ok(published_generation));
    };
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
        return Ok(Err(Action::requeue(super::decide::SECRET_APPEARED_RECHECK)));
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

/// Writes the new status when it changed, and one Event per transition of the conditions users
/// act on (Ready repeats a reason just reported by the other two, so it is not said twice).
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
    let mut reported = vec![];
    for t in [
        types::CONNECTION_VERIFIED,
        types::SENDER_VERIFIED,
        types::READY,
    ] {
        let (before, after) = (state(prior, t), state(new, t));
        if let Some((status, reason, message)) = after
            && before.as_ref().map(|b| (&b.0, &b.1)) != Some((&status, &reason))
            && !reported.contains(&reason)
        {
            ctx.event(es, status != "True", &reason, message).await;
            reported.push(reason);
        }
    }
    Ok(())
}

/// The condition of a type in a status, as (status, reason, message).
fn state(status: &EmailSettingsStatus, t: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}
