//! Step 1 of a SenderIdentity's reconcile: read what it refers to — its EmailSettings and its
//! siblings, from the caches — and what this process remembers of it. No I/O.

use crate::controller::backends::{Backends, SesKey};
use crate::controller::tenancy;
use crate::controller::{ADOPT_ANNOTATION, Context, RETRY_ANNOTATION, Stale};
use crate::crd::sender_identity::{SenderIdentityStatus, SesLocation};
use crate::crd::{EmailSettings, SenderIdentity};
use crate::names::IdentityName;
use crate::policy::{self, Verdict};
use crate::ses::{Owner, VerificationStatus};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use std::sync::Arc;

/// Where the policy leaves the SenderIdentity.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// It may exist in SES, at this location.
    Admitted(Target),
    /// It may not (reason, message).
    Rejected {
        reason: &'static str,
        message: String,
    },
    /// Nothing to decide yet: not in the policy's view, or its EmailSettings has no SES region.
    Undecided,
}

/// An admitted identity and where it lives in SES.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: IdentityName,
    /// The name SES knows it by (a domain lower-cased, an address as written).
    pub name: String,
    pub location: SesLocation,
    pub key: SesKey,
    /// Its EmailSettings publishes the configuration of its current spec (so what the identity
    /// held before a move may be let go).
    pub settings_published: bool,
    /// What the policies let its namespace do with its domain (adopt, publish records).
    pub rights: tenancy::Rights,
}

/// Everything the decision and the SES step read.
#[derive(Debug, Clone)]
pub struct Read {
    pub uid: String,
    pub generation: Option<i64>,
    pub admission: Admission,
    /// The status to reconcile from (the one this process last wrote, else the cached one),
    /// with a move recorded ([`super::status::track_move`]).
    pub prior: SenderIdentityStatus,
    /// The `email.ops.dev/retry` annotation.
    pub retry: Option<String>,
    /// `email.ops.dev/adopt: "true"`.
    pub adopt: bool,
    /// The bulk listing saw its SES status change since it was last read (or it is to be
    /// read for another reason, see [`Stale`]).
    pub dirty: bool,
    /// What that listing said: its verification status and whether SES lets it send.
    pub listed: Option<(VerificationStatus, bool)>,
    /// When it was last read from SES, as far as this process knows.
    pub checked_at: Option<Timestamp>,
    pub owner: Owner,
}

/// Reads what the SenderIdentity refers to and what is remembered of it.
pub fn read<B: Backends>(si: &SenderIdentity, ctx: &Context<B>) -> Read {
    let ns = si.namespace().unwrap_or_default();
    let uid = si.uid().unwrap_or_default();
    let mut prior = ctx.identity_prior(si);
    let settings_name = &si.spec.email_settings_ref.name;
    let settings = ctx.settings(&ns, settings_name);
    let siblings = ctx.identities_in(&ns);
    let admission = admission(si, settings, &siblings, ctx);
    let mut stale = None;
    if let Admission::Admitted(t) = &admission {
        // A move (the EmailSettings' region or role changed) is not quiet: `prior.ses` still
        // says where it was.
        super::status::track_move(&mut prior, &t.location);
        stale = ctx.take_dirty(&t.key, &t.name);
    }
    let checked_at = ctx
        .memory
        .checked
        .get(&uid)
        .into_iter()
        .chain(prior.last_checked_time.as_ref().map(|t| t.0))
        .max();
    Read {
        generation: si.metadata.generation,
        admission,
        prior,
        retry: si.annotations().get(RETRY_ANNOTATION).cloned(),
        adopt: si
            .annotations()
            .get(ADOPT_ANNOTATION)
            .is_some_and(|v| v == "true"),
        dirty: stale.is_some(),
        listed: match stale {
            Some(Stale::Listed {
                status, sending, ..
            }) => Some((status, sending)),
            _ => None,
        },
        checked_at,
        owner: owner(si, &ctx.config.cluster_id),
        uid,
    }
}

/// The policy's verdict on the SenderIdentity among its siblings, then the tenancy verdict on
/// its claim among other namespaces' (a rejected identity never reaches SES), and where its
/// EmailSettings puts it.
fn admission<B: Backends>(
    si: &SenderIdentity,
    settings: Option<Arc<EmailSettings>>,
    siblings: &[SenderIdentity],
    ctx: &Context<B>,
) -> Admission {
    let settings_name = &si.spec.email_settings_ref.name;
    let verdicts = policy::decide(settings_name, settings.as_deref(), siblings);
    let id = match verdicts.get(&si.name_any()) {
        Some(Verdict::Admitted(id)) => id.clone(),
        Some(Verdict::Rejected { reason, message }) => {
            return Admission::Rejected {
                reason,
                message: message.clone(),
            };
        }
        None => return Admission::Undecided,
    };
    let Some(es) = settings.as_deref() else {
        return Admission::Undecided;
    };
    let Some(a) = es.spec.advanced_smtp.as_ref() else {
        return Admission::Undecided;
    };
    let location = SesLocation {
        region: a.region.clone(),
        role_arn: a.role_arn.clone(),
    };
    if let Some(claim) = tenancy::identity_claim(si, &id, es)
        && let Verdict::Rejected { reason, message } = tenancy::judge(ctx, &claim)
    {
        return Admission::Rejected { reason, message };
    }
    let published = es.publishes_current_spec();
    let rights = tenancy::rights(ctx, &si.namespace().unwrap_or_default(), id.domain());
    Admission::Admitted(Target {
        name: id.to_string(),
        key: SesKey::of(&location, &si.namespace().unwrap_or_default()),
        id,
        location,
        settings_published: published,
        rights,
    })
}

/// Who owns this SenderIdentity's claim on its SES identity.
pub fn owner(si: &SenderIdentity, cluster_id: &str) -> Owner {
    Owner {
        cluster: cluster_id.to_string(),
        namespace: si.namespace().unwrap_or_default(),
        name: si.name_any(),
        deletion_policy: si.spec.deletion_policy,
    }
}
