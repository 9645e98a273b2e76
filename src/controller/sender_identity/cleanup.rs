//! The finalizer's cleanup: release our claim on the SES identity; delete it only as its last
//! owner with `deletionPolicy: Delete`. Idempotent; NotFound counts as done; an identity that is
//! not ours is never touched.

use super::Error;
use super::apply::get;
use super::dereference::owner;
use crate::controller::Context;
use crate::controller::backends::{Backends, SesKey};
use crate::crd::SenderIdentity;
use crate::crd::conditions::reasons;
use crate::crd::sender_identity::{DeletionPolicy, SesLocation};
use crate::names::IdentityName;
use crate::ses::{SesApi, SesError, owner_tags};
use kube::ResourceExt;
use kube::runtime::controller::Action;

/// Finalizer: release our claim where the identity is, and wherever it was before a move.
pub(super) async fn cleanup<B: Backends>(
    si: &SenderIdentity,
    ctx: &Context<B>,
) -> Result<Action, Error> {
    // Where it went is read before this process forgets what it wrote: the copy of `si` this
    // reconcile began with may predate the status that recorded it.
    let status = ctx.identity_prior(si);
    ctx.forget(&si.uid().unwrap_or_default());
    let Ok(id) = IdentityName::parse(&si.spec.identity) else {
        return Ok(Action::await_change());
    };
    for location in status.ses.iter().chain(&status.former_locations) {
        release(si, ctx, &id, location).await?;
    }
    Ok(Action::await_change())
}

/// Releases our claim on the identity in one SES location: deletes it as its last owner with
/// `deletionPolicy: Delete`, otherwise removes only our owner tag. NotFound counts as done; an
/// identity that is not ours, or no longer claimed by us, is left as it is.
pub(super) async fn release<B: Backends>(
    si: &SenderIdentity,
    ctx: &Context<B>,
    id: &IdentityName,
    location: &SesLocation,
) -> Result<(), Error> {
    let name = id.to_string();
    let ses = ctx
        .backends
        .ses(&SesKey::of(location, &si.namespace().unwrap_or_default()))
        .await;
    let me = owner(si, &ctx.config.cluster_id);
    let Some(details) = get(&ses, &name).await? else {
        return Ok(());
    };
    if !crate::ses::is_managed(&details.tags) {
        return Ok(()); // never touch what is not ours
    }
    let owners = owner_tags(&details.tags);
    if !owners.iter().any(|(k, _)| *k == me.tag_key()) {
        return Ok(());
    }
    let region = &location.region;
    let others = owners.iter().filter(|(k, _)| *k != me.tag_key()).count();
    // An adopted identity existed before the operator: it is kept, whatever the policy says.
    let adopted = crate::ses::is_adopted(&details.tags);
    if others == 0 && si.spec.deletion_policy == DeletionPolicy::Delete && !adopted {
        match ses.delete_identity(&name).await {
            Ok(()) | Err(SesError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        ctx.event(
            si,
            false,
            reasons::IDENTITY_DELETED,
            format!("deleted {name} from SES {region}"),
        )
        .await;
    } else {
        match ses.untag_identity(&name, &[me.tag_key()]).await {
            Ok(()) | Err(SesError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let why = if others > 0 {
            format!("{others} other SenderIdentity(s) still use it")
        } else if adopted {
            "it was adopted: the operator never deletes an identity it did not create".into()
        } else {
            "deletionPolicy is Retain".into()
        };
        ctx.event(
            si,
            false,
            reasons::IDENTITY_RELEASED,
            format!("{name} stays in SES {region}: {why}"),
        )
        .await;
    }
    Ok(())
}
