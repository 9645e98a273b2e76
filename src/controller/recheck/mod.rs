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
use super::packed::Packed;
use crate::crd::SenderIdentity;
use crate::ses::SesApi;
use due::{Cadence, Listed, Schedule, changed, periods};
pub use due::{Recorded, recorded};
use futures::channel::mpsc;
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

/// Lists the locations in use on their cadence and wakes the SenderIdentities whose listed
/// status differs from the recorded one. Comparing with the recorded status (not with the
/// previous listing) keeps this right across operator restarts.
pub async fn run<B: Backends>(
    ctx: Arc<Context<B>>,
    trigger: mpsc::UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
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
        // identities it has not read since. Read from each one's summary in the cache, which
        // a round leaves packed.
        let all = ctx.caches.identities.state();
        let periods = periods(all.iter().filter_map(|p| p.summary().as_ref()), cadence);
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
            let recorded = now.iter().filter_map(|p| Some((p, p.summary().as_ref()?)));
            for (p, r, why) in changed(recorded, &key, &listed, began) {
                ctx.mark_dirty(&key, &r.identity, why);
                let _ = trigger.unbounded_send(ObjectRef::from_obj(p.as_ref()));
            }
        }
        // From the periods the round began with: a location whose period shortened meanwhile
        // is looked at within a tick.
        wake = schedule.next_wake(&periods, Instant::now());
    }
}
