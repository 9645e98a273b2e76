//! The bulk re-check of verified identities: one `ListEmailIdentities` page covers up to 1,000
//! identities' verification status, so instead of reading each verified identity, the operator
//! lists each account+region periodically and re-reads (by triggering a reconcile) only the
//! identities whose listed status changed.

use super::{Context, SesKey};
use crate::crd::SenderIdentity;
use crate::ses::SesApi;
use futures::channel::mpsc;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Lists every SES location in use each `interval` and wakes the SenderIdentities whose
/// recorded verification status differs from the listed one. Comparing with the recorded
/// status (not with the previous listing) keeps this right across operator restarts.
pub async fn run(
    ctx: Arc<Context>,
    interval: Duration,
    trigger: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<SenderIdentity>>>,
) {
    loop {
        tokio::time::sleep(interval).await;
        // Every location a SenderIdentity's status names, so a restarted operator re-checks
        // identities it has not read since.
        let identities = ctx.valid_identities();
        let mut keys: Vec<SesKey> = identities
            .iter()
            .filter_map(|si| si.status.as_ref()?.ses.as_ref())
            .map(|l| SesKey {
                region: l.region.clone(),
                role_arn: l.role_arn.clone(),
            })
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let ses = ctx.ses(&key).await;
            let mut token = None;
            let mut listed: HashMap<String, String> = HashMap::new();
            loop {
                match ses.list_identities(token.take()).await {
                    Ok((page, next)) => {
                        listed.extend(
                            page.into_iter()
                                .map(|r| (r.name.to_ascii_lowercase(), r.verification_status)),
                        );
                        match next {
                            Some(n) => token = Some(n),
                            None => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(region = key.region, error = %e, "listing SES identities failed");
                        listed.clear();
                        break;
                    }
                }
            }
            for si in &identities {
                let Some(status) = si.status.as_ref() else {
                    continue;
                };
                let here = status
                    .ses
                    .as_ref()
                    .is_some_and(|l| l.region == key.region && l.role_arn == key.role_arn);
                let recorded = status
                    .verification_status
                    .as_deref()
                    .map(super::sender_identity::to_ses_status);
                let Some(now) = listed.get(&si.spec.identity.to_ascii_lowercase()) else {
                    continue;
                };
                if here && recorded.as_deref() != Some(now.as_str()) {
                    ctx.mark_dirty(&key, &si.spec.identity);
                    let _ = trigger.unbounded_send(super::guard_ref(si));
                }
            }
        }
    }
}
