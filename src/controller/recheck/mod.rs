//! The bulk re-check: one `ListEmailIdentities` page covers up to 1,000 identities'
//! verification status, so instead of reading identities one by one the operator lists each
//! account+region and re-reads (by triggering a reconcile) only the identities whose listed
//! status differs from the recorded one, or that are missing from the listing.
//!
//! A location is listed every `pending_every` while one of its identities is still on its way
//! (pending, or in temporary failure), and every `verified_every` otherwise. At SES's default
//! of 1 call a second, per-identity polls of a thousand pending identities would starve
//! the creation of new ones; the listing costs one call per thousand.

mod due;

use super::Context;
use super::backends::{Backends, SesKey};
use crate::crd::SenderIdentity;
use crate::ses::SesApi;
use due::{Cadence, Listed, Recorded, Schedule, changed, periods, recorded};
use futures::channel::mpsc;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

/// Lists every identity of one location; `None` when a page failed (nothing is concluded).
async fn list_all(ses: &impl SesApi, key: &SesKey) -> Option<Listed> {
    let mut token = None;
    let mut listed = HashMap::new();
    loop {
        match ses.list_identities(token.take()).await {
            Ok((page, next)) => {
                listed.extend(page.into_iter().map(|r| {
                    (
                        crate::ses::identity_key(&r.name),
                        (r.verification_status, r.sending_enabled),
                    )
                }));
                match next {
                    Some(n) => token = Some(n),
                    None => return Some(listed),
                }
            }
            Err(e) => {
                tracing::warn!(region = key.region, error = %e, "listing SES identities failed");
                return None;
            }
        }
    }
}

/// What the cached SenderIdentities' statuses record.
fn recorded_all(all: &[Arc<DeserializeGuard<SenderIdentity>>]) -> Vec<Recorded<'_>> {
    all.iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter_map(recorded)
        .collect()
}

/// Lists the locations in use on their cadence and wakes the SenderIdentities whose listed
/// status differs from the recorded one. Comparing with the recorded status (not with the
/// previous listing) keeps this right across operator restarts.
pub async fn run<B: Backends>(
    ctx: Arc<Context<B>>,
    trigger: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<SenderIdentity>>>,
) {
    let cadence = Cadence {
        verified_every: ctx.config.recheck.verified_every,
        pending_every: ctx.config.recheck.windows.pending_min,
    };
    let mut schedule = Schedule::new(Instant::now(), cadence);
    let mut wake = schedule.first_wake();
    loop {
        tokio::time::sleep_until(wake).await;
        // Every location a SenderIdentity's status names, so a restarted operator re-checks
        // identities it has not read since. Borrowed from the cache's shared copies: cloning
        // ten thousand objects every round was most of the operator's CPU at that size.
        let all = ctx.caches.identities.state();
        let periods = periods(&recorded_all(&all), cadence);
        drop(all);
        for (key, period) in schedule.due(&periods, Instant::now()) {
            let ses = ctx.backends.ses(&key).await;
            if schedule.deferred(&key, period, ses.busy(), Instant::now()) {
                tracing::debug!(region = key.region, "listing deferred: calls are waiting");
                continue;
            }
            let began = ctx.clock.now();
            let asked = Instant::now();
            schedule.listed(&key, asked);
            let Some(listed) = list_all(&ses, &key).await else {
                continue;
            };
            tracing::debug!(
                region = key.region,
                identities = listed.len(),
                took_ms = asked.elapsed().as_millis() as u64,
                "listed SES identities"
            );
            // Compared with the statuses as they are now, not as they were before the listing:
            // an identity whose own reconcile saw it verified while the listing was under way
            // is not read a second time.
            let now = ctx.caches.identities.state();
            let identities = recorded_all(&now);
            for (si, why) in changed(&identities, &key, &listed, began) {
                ctx.mark_dirty(&key, &si.spec.identity, why);
                let _ = trigger.unbounded_send(super::guard_ref(si));
            }
        }
        // From the periods the round began with: a location whose period shortened meanwhile
        // is looked at within a tick.
        wake = schedule.next_wake(&periods, Instant::now());
    }
}
