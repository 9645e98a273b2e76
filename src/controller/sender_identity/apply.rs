//! Step 3 of a SenderIdentity's reconcile: the only step that calls SES, DNS or writes to
//! Kubernetes. It carries out what [`super::decide`] and [`super::step`] decided, then hands
//! what SES said to [`super::status`].

use super::decide::{self, DNS_ENDPOINT_RETRY};
use super::dereference::{Read, Target};
use super::step::{Facts, Recreation, Step, next_step};
use super::{Error, cleanup, dns_endpoint, records, status};
use crate::controller::backends::{Backends, SesKey};
use crate::controller::tenancy::Rights;
use crate::controller::{ADOPT_ANNOTATION, Context, RETRY_ANNOTATION, Stale, apply_status};
use crate::crd::SenderIdentity;
use crate::crd::conditions::reasons;
use crate::crd::sender_identity::SenderIdentityStatus;
use crate::ses::turns::Turn;
use crate::ses::{self, IdentityDetails, SesApi, SesError, VerificationStatus};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

/// What SES holds, and the verification lifecycle as this reconcile leaves it.
struct Lifecycle {
    details: Option<IdentityDetails>,
    pending_since: Option<Timestamp>,
    attempts: i32,
    key_length_changed: Option<Timestamp>,
}

impl Lifecycle {
    /// SES's answer, and the lifecycle as the last status left it.
    fn from(details: Option<IdentityDetails>, prior: &SenderIdentityStatus) -> Self {
        Self {
            details,
            pending_since: prior.pending_since.as_ref().map(|t| t.0),
            attempts: prior.verification_attempts.unwrap_or(0),
            key_length_changed: prior.dkim_key_length_changed_time.as_ref().map(|t| t.0),
        }
    }
}

/// How a step ended: go on to the status, or stop here with this answer.
enum Acted {
    Continue(Lifecycle),
    Done(Action),
}

/// The SenderIdentity being reconciled, where its status is written, and the operator's
/// context: what every step here acts on.
pub struct Apply<'a, B: Backends> {
    pub si: &'a SenderIdentity,
    pub api: &'a Api<SenderIdentity>,
    pub ctx: &'a Context<B>,
    /// The moment this reconcile acts at.
    pub now: Timestamp,
    /// What the policies let its namespace do with its domain.
    pub rights: Rights,
}

impl<B: Backends> Apply<'_, B> {
    /// The rejected status (Accepted and Ready False), written when it says something new.
    pub async fn reject(&self, reason: &str, message: &str) -> Result<Action, Error> {
        let Self { si, ctx, now, .. } = *self;
        let prior = ctx.identity_prior(si);
        let new = status::rejected(&prior, reason, message, si.metadata.generation, now);
        self.write_if_changed(&prior, &new).await?;
        Ok(Action::await_change())
    }

    /// Writes `new` (and the Events its changes are worth) when it differs from `prior`.
    async fn write_if_changed(
        &self,
        prior: &SenderIdentityStatus,
        new: &SenderIdentityStatus,
    ) -> Result<(), Error> {
        if new != prior {
            self.write(prior, new).await?;
        }
        Ok(())
    }

    async fn write(
        &self,
        prior: &SenderIdentityStatus,
        new: &SenderIdentityStatus,
    ) -> Result<(), Error> {
        let Self { si, api, ctx, .. } = *self;
        for t in status::transitions(prior, new) {
            ctx.event(si, t.warning, &t.reason, t.note).await;
        }
        apply_status(api, si, new).await?;
        ctx.wrote_status(&si.uid().unwrap_or_default(), new);
        Ok(())
    }

    /// Applies (or removes) the DNSEndpoint for the records in `status` and says how it went in
    /// its `DnsEndpointReady` condition; true while it cannot be written. A missing CRD or
    /// permission is not a failed reconcile but a problem to report, so the status — and with it
    /// where the SES identity lives — is still written.
    async fn sync_dns_endpoint(
        &self,
        status: &mut SenderIdentityStatus,
        spec_changed: bool,
    ) -> Result<bool, Error> {
        let Self { si, ctx, now, .. } = *self;
        let allowed = self.rights.publish_records;
        let written =
            dns_endpoint::reconcile(&ctx.client, si, &status.dns_records, spec_changed, allowed)
                .await;
        let problem = match written {
            Ok(()) if !allowed && dns_endpoint::wanted(si) => Some((
                reasons::DNS_PUBLISHING_NOT_GRANTED,
                format!(
                    "dns.provider is ExternalDNS, but no SenderPolicy in namespace {} lets this namespace publish records for {}: publish the records in status.dnsRecords yourself (and set dns.provider: None), or ask the platform team for publishRecords",
                    ctx.config.tenancy.policy_namespace, si.spec.identity
                ),
            )),
            Ok(()) => None,
            Err(e) => match dns_endpoint::unavailable(&e) {
                Some(problem) => {
                    tracing::warn!(reason = problem.0, error = %e, "cannot write the DNSEndpoint");
                    Some(problem)
                }
                None => return Err(e.into()),
            },
        };
        status::dns_endpoint(
            status,
            dns_endpoint::wanted(si),
            problem.as_ref(),
            si.metadata.generation,
            now,
        );
        Ok(problem.is_some())
    }

    /// A quiet identity whose DNSEndpoint could not be written: only that is tried again (no SES
    /// call). Once it is written the status says so, which brings the identity back.
    pub async fn retry_dns_endpoint(&self, prior: &SenderIdentityStatus) -> Result<Action, Error> {
        let mut new = prior.clone();
        let failing = self.sync_dns_endpoint(&mut new, false).await?;
        self.write_if_changed(prior, &new).await?;
        Ok(if failing {
            Action::requeue(DNS_ENDPOINT_RETRY)
        } else {
            Action::requeue(decide::AT_ONCE)
        })
    }

    /// The timer of a pending identity between bulk listings: its records are looked up again in
    /// DNS (no SES call), and the status is written only when what DNS shows changed.
    pub async fn refresh_dns(&self, read: &Read, target: &Target) -> Result<Action, Error> {
        let Self {
            si, api, ctx, now, ..
        } = *self;
        let prior = &read.prior;
        let records = records::check(
            target.id.domain(),
            prior.dns_records.clone(),
            ctx.backends.dns(),
        )
        .await;
        ctx.memory.checked.set(&read.uid, now);
        let windows = &ctx.config.recheck.windows;
        let unpublished = if records != prior.dns_records {
            let mut new = SenderIdentityStatus {
                dns_records: records,
                ..prior.clone()
            };
            self.sync_dns_endpoint(&mut new, false).await?;
            apply_status(api, si, &new).await?;
            ctx.wrote_status(&read.uid, &new);
            decide::unpublished_due(&new, now, windows)
        } else {
            decide::unpublished_due(prior, now, windows)
        };
        let verification = prior
            .verification_status
            .as_deref()
            .and_then(VerificationStatus::from_shown)
            .unwrap_or_default();
        let after = [
            decide::next_read(verification, prior, now, target.id.is_domain(), windows),
            unpublished,
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(after.map_or_else(Action::await_change, Action::requeue))
    }

    /// Reads SES, takes the one step [`next_step`] decides, and writes what SES then says.
    /// SES is not read for an identity never created (the create answers) nor for one the
    /// bulk listing shows verified when that is all its status needs
    /// ([`decide::listed_details`]).
    pub async fn converge(&self, mut read: Read, target: &Target) -> Result<Action, Error> {
        let Self { si, ctx, now, .. } = *self;
        let listed = decide::listed_details(
            &read,
            target,
            mail_from(si, target).is_some(),
            key_length(si, target),
        );
        if let Some(details) = listed {
            let lifecycle = Lifecycle::from(Some(details), &read.prior);
            return self.finish(&read, target, lifecycle).await;
        }
        let ses = ctx.backends.ses(&target.key).await;
        // Its namespace's turn at the account's SES budget; held until this reconcile is done.
        let _turn = match ses.turn(&si.namespace().unwrap_or_default(), &read.uid) {
            Turn::Go(permit) => permit,
            Turn::Later(after) => return Ok(Action::requeue(after)),
        };
        if decide::never_created(&read) {
            let fresh = Lifecycle::from(None, &read.prior);
            match self.create_step(&ses, &mut read, target, fresh).await? {
                Some(Acted::Continue(l)) => return self.finish(&read, target, l).await,
                Some(Acted::Done(action)) => return Ok(action),
                // Someone's already: read below, and decided on like any identity found.
                None => {}
            }
        }
        let details = get(&ses, &target.name).await?;
        ctx.settle_dirty(&target.key, &target.name, now);
        let owner_key = read.owner.tag_key();
        let facts = Facts {
            ses: details.as_ref(),
            owner_key: &owner_key,
            adopt: read.adopt && target.rights.adopt,
            may_change: may_change(details.as_ref(), &owner_key, &read.owner),
            is_domain: target.id.is_domain(),
            spec: &si.spec,
            prior: &read.prior,
            retry: read.retry.as_deref(),
            generation: read.generation,
            now,
        };
        let step = next_step(&facts, &ctx.config.recheck.windows);
        let lifecycle = Lifecycle::from(details, &read.prior);
        let acted = match step {
            Step::Create => match self.create_step(&ses, &mut read, target, lifecycle).await? {
                Some(acted) => acted,
                None => Acted::Done(already_there(ctx, &target.key, &target.name)),
            },
            Step::NotOwned => Acted::Done(self.not_owned(&read, target).await?),
            Step::Claim { adopt } => {
                self.claim_step(&ses, &read, target, lifecycle, adopt)
                    .await?
            }
            Step::Recreate { cause, message } => {
                self.recreate_step(&ses, &read, target, lifecycle, cause, message)
                    .await?
            }
            Step::Configure {
                mail_from,
                key_length,
            } => Acted::Continue(
                configure(&ses, target, lifecycle, mail_from, key_length, now).await?,
            ),
            Step::WaitForRetry | Step::Observe => Acted::Continue(lifecycle),
        };
        match acted {
            Acted::Done(action) => Ok(action),
            Acted::Continue(l) => self.finish(&read, target, l).await,
        }
    }

    /// Deleted and created again (its 72 hours ran out, or a retry was asked for).
    async fn recreate_step(
        &self,
        ses: &B::Ses,
        read: &Read,
        target: &Target,
        mut l: Lifecycle,
        cause: Recreation,
        message: String,
    ) -> Result<Acted, Error> {
        let Self { si, ctx, now, .. } = *self;
        match recreate(ses, read, target, si, l.details.take()).await? {
            Created::AlreadyThere => Ok(Acted::Done(already_there(ctx, &target.key, &target.name))),
            Created::New(details) => {
                l.details = details;
                l.pending_since = Some(now);
                l.attempts = if cause == Recreation::RetryRequested {
                    1
                } else {
                    l.attempts + 1
                };
                ctx.event(si, true, cause.reason(), message).await;
                Ok(Acted::Continue(l))
            }
        }
    }

    /// No identity in SES: record where it goes, then create it tagged as ours. `None`: SES
    /// says it is already there.
    async fn create_step(
        &self,
        ses: &B::Ses,
        read: &mut Read,
        target: &Target,
        mut l: Lifecycle,
    ) -> Result<Option<Acted>, Error> {
        let Self {
            si, api, ctx, now, ..
        } = *self;
        // Where it is going is recorded first: a deletion then finds it, whatever fails between
        // here and the status written at the end.
        if read.prior.ses.as_ref() != Some(&target.location) {
            let recorded = status::creating(
                &read.prior,
                &target.id,
                &target.location,
                read.generation,
                now,
            );
            apply_status(api, si, &recorded).await?;
            ctx.wrote_status(&read.uid, &recorded);
            read.prior = recorded;
        }
        let tags = read.owner.creation_tags();
        let created = create(
            ses,
            &target.name,
            &tags,
            creation_key_length(si, target),
            mail_from(si, target),
        )
        .await;
        l.details = match created {
            Err(Error::Ses(SesError::QuotaExceeded(detail))) => {
                return self
                    .quota_exceeded(read, target, &detail)
                    .await
                    .map(|a| Some(Acted::Done(a)));
            }
            Ok(Created::AlreadyThere) => return Ok(None),
            Ok(Created::New(details)) => details,
            Err(e) => return Err(e),
        };
        l.pending_since = Some(now);
        l.attempts += 1;
        let created = format!(
            "created {} in SES ({})",
            target.name, target.location.region
        );
        let next = if target.id.is_domain() {
            let records = l.details.as_ref().map_or("records".to_string(), |d| {
                format!("{} CNAME records", d.dkim_tokens.len())
            });
            format!(
                "it is verified once the {records} in .status.dnsRecords are published in DNS (SES looks for them for 72 hours)"
            )
        } else {
            format!(
                "SES emailed a verification link to {}, valid 24 hours; it is verified once the link is followed",
                target.name
            )
        };
        ctx.event(
            si,
            false,
            reasons::IDENTITY_CREATED,
            format!("{created}: {next}"),
        )
        .await;
        Ok(Some(Acted::Continue(l)))
    }

    /// SES refused to create it for the account's identity quota: stalled until someone acts.
    async fn quota_exceeded(
        &self,
        read: &Read,
        target: &Target,
        detail: &str,
    ) -> Result<Action, Error> {
        let now = self.now;
        let msg = format!(
            "SES refused to create {} in {}: the account's quota of identities in the region is reached (SES allows 10,000 per region; {detail}). Delete identities the account no longer uses, or ask AWS for a higher quota, then change this SenderIdentity or the annotation {RETRY_ANNOTATION} to try again",
            target.name, target.location.region
        );
        let new = SenderIdentityStatus {
            observed_retry: read.retry.clone(),
            ..status::stalled(
                &read.prior,
                reasons::SES_QUOTA_EXCEEDED,
                &msg,
                read.generation,
                now,
            )
        };
        self.write_if_changed(&read.prior, &new).await?;
        Ok(Action::await_change())
    }

    /// It exists and is not ours: left untouched, and said so.
    async fn not_owned(&self, read: &Read, target: &Target) -> Result<Action, Error> {
        let policies = &self.ctx.config.tenancy.policy_namespace;
        if read.adopt {
            let msg = format!(
                "{} exists outside the operator, and no SenderPolicy in namespace {policies} lets this namespace adopt it (adoptExisting); it is left untouched",
                target.name
            );
            return self.reject(reasons::ADOPTION_NOT_GRANTED, &msg).await;
        }
        let msg = format!(
            "{} cannot be created: it exists outside the operator, which leaves it untouched. To use it, the platform team grants adoption (a SenderPolicy in namespace {policies} with adoptExisting) and you set the annotation {ADOPT_ANNOTATION}: \"true\"",
            target.name
        );
        self.reject(reasons::IDENTITY_NOT_OWNED, &msg).await
    }

    /// It exists and may be used: add our owner tag (and the managed-by tag when adopting) —
    /// unless that would pass SES's 50 tags.
    async fn claim_step(
        &self,
        ses: &B::Ses,
        read: &Read,
        target: &Target,
        mut l: Lifecycle,
        adopt: bool,
    ) -> Result<Acted, Error> {
        let Self { si, ctx, now, .. } = *self;
        let mut tags = vec![(read.owner.tag_key(), read.owner.tag_value())];
        if adopt {
            tags.push((ses::MANAGED_BY_KEY.into(), ses::MANAGED_BY_VALUE.into()));
            tags.push((ses::ADOPTED_KEY.into(), "true".into()));
        }
        let existing = l
            .details
            .as_ref()
            .map(|d| d.tags.as_slice())
            .unwrap_or_default();
        if ses::tag_count_after(existing, &tags) > ses::MAX_TAGS {
            let msg = format!(
                "{} in SES {} carries {} tags, and SES allows {} per identity: one is ours (email.ops.dev/managed-by), one is each SenderIdentity sharing it, the rest were added by hand. Delete a SenderIdentity that shares it, or remove tags added by hand, for this one to claim it",
                target.name,
                target.location.region,
                ses::tag_count_after(existing, &[]),
                ses::MAX_TAGS
            );
            self.reject(reasons::SES_TAG_LIMIT_REACHED, &msg).await?;
            return Ok(Acted::Done(Action::requeue(decide::TAG_LIMIT_RECHECK)));
        }
        ses.tag_identity(&target.name, &tags).await?;
        let (reason, note) = if adopt {
            (
                reasons::IDENTITY_ADOPTED,
                format!("adopted the existing SES identity {}", target.name),
            )
        } else {
            (
                reasons::IDENTITY_SHARED,
                format!(
                    "{} already exists in SES for another SenderIdentity; this one now shares it",
                    target.name
                ),
            )
        };
        ctx.event(si, false, reason, note).await;
        l.pending_since.get_or_insert(now);
        l.attempts = l.attempts.max(1);
        // What SES now holds: what was read, with our tags (TagResource replaces a key's value).
        if let Some(d) = l.details.as_mut() {
            d.tags.retain(|(k, _)| tags.iter().all(|(t, _)| t != k));
            d.tags.extend(tags);
        }
        Ok(Acted::Continue(l))
    }

    /// Status from what SES said: records checked in DNS, what was held before a move let go once
    /// verified here, the DNSEndpoint kept in step, then the write and the next look.
    async fn finish(&self, read: &Read, target: &Target, l: Lifecycle) -> Result<Action, Error> {
        let Self { ctx, now, .. } = *self;
        let Some(details) = &l.details else {
            return Ok(Action::requeue(decide::VANISHED_RECHECK));
        };
        let prior = &read.prior;
        let windows = &ctx.config.recheck.windows;
        let mut new = self.observed(read, target, details, &l).await;
        ctx.memory.checked.set(&read.uid, now);
        let release_failed = self.release_former(target, &mut new).await;
        // The DNSEndpoint follows the records, and the spec (provider switched on or off). A
        // generation never observed before has no DNSEndpoint of ours to take back.
        let spec_changed =
            prior.observed_generation.is_some() && read.generation != prior.observed_generation;
        let mut endpoint_failing = false;
        if new.dns_records != prior.dns_records
            || spec_changed
            || decide::dns_endpoint_failing(prior)
        {
            endpoint_failing = self.sync_dns_endpoint(&mut new, spec_changed).await?;
        }
        if decide::needs_write(prior, &new, now) {
            self.write(prior, &new).await?;
        }
        if let Some(e) = release_failed {
            return Err(e);
        }
        let after = decide::after(
            details.verification_status,
            &new,
            now,
            target.id.is_domain(),
            endpoint_failing,
            windows,
        );
        Ok(after.map_or_else(Action::await_change, Action::requeue))
    }

    /// The status SES's answer, and DNS, now give.
    async fn observed(
        &self,
        read: &Read,
        target: &Target,
        details: &IdentityDetails,
        l: &Lifecycle,
    ) -> SenderIdentityStatus {
        let Self { si, ctx, now, .. } = *self;
        let records = records::records(
            &target.id,
            si,
            details,
            &target.location,
            ctx.backends.dns(),
        )
        .await;
        status::observed(
            &read.prior,
            status::Observation {
                identity: &target.id,
                details,
                records,
                location: target.location.clone(),
                pending_since: l.pending_since.or(Some(now)),
                attempts: l.attempts.max(1),
                observed_retry: read.retry.clone(),
                generation: read.generation,
                now,
                mail_from: mail_from(si, target),
                key_length: key_length(si, target),
                key_length_changed: l.key_length_changed,
                windows: &ctx.config.recheck.windows,
            },
        )
    }

    /// Verified here: what it held before a move is let go. A failure is kept for the caller to
    /// return (so it is retried, and said) after the status is written.
    async fn release_former(
        &self,
        target: &Target,
        new: &mut SenderIdentityStatus,
    ) -> Option<Error> {
        if !decide::release_due(new, target.settings_published) {
            return None;
        }
        let mut failed = None;
        for former in std::mem::take(&mut new.former_locations) {
            if let Err(e) = cleanup::release(self.si, self.ctx, &target.id, &former).await {
                new.former_locations.push(former);
                failed.get_or_insert(e);
            }
        }
        failed
    }
}

/// Whether this SenderIdentity may reconfigure or re-create the SES identity: it was not
/// adopted, and every other claim on it is of the same namespace and cluster (a sole owner, or
/// a namespace's own EmailSettings sharing it). A claim of another namespace or cluster, or an
/// adopted identity, is left as its creator configured it.
pub(super) fn may_change(
    details: Option<&IdentityDetails>,
    owner_key: &str,
    me: &ses::Owner,
) -> bool {
    let Some(details) = details else {
        return true;
    };
    if ses::is_adopted(&details.tags) {
        return false;
    }
    let mine = format!("{}/{}/", me.cluster, me.namespace);
    ses::owner_tags(&details.tags)
        .iter()
        .filter(|(k, _)| k != owner_key)
        .all(|(_, v)| {
            v.split_once(' ')
                .is_some_and(|(_, who)| who.starts_with(&mine))
        })
}

/// The spec's DKIM key length for a domain identity (SES's default, 2048 bits, when unset).
fn creation_key_length(si: &SenderIdentity, target: &Target) -> Option<&'static str> {
    target.id.is_domain().then(|| {
        si.spec
            .dkim
            .as_ref()
            .map(|d| d.key_length)
            .unwrap_or_default()
            .as_str()
    })
}

/// The DKIM key length the spec asks for (domain identities only).
fn key_length(si: &SenderIdentity, target: &Target) -> Option<&'static str> {
    target
        .id
        .is_domain()
        .then(|| si.spec.dkim.as_ref().map(|d| d.key_length.as_str()))
        .flatten()
}

/// The spec's custom MAIL FROM domain (domain identities only).
fn mail_from<'a>(si: &'a SenderIdentity, target: &Target) -> Option<&'a str> {
    si.spec
        .mail_from_domain
        .as_deref()
        .filter(|_| target.id.is_domain())
}

/// Deletes and creates it again, with its tags (but AWS's own, which a request may not carry).
async fn recreate<S: SesApi>(
    ses: &S,
    read: &Read,
    target: &Target,
    si: &SenderIdentity,
    details: Option<IdentityDetails>,
) -> Result<Created, Error> {
    match ses.delete_identity(&target.name).await {
        Ok(()) | Err(SesError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let tags = details
        .as_ref()
        .map(|d| ses::carried_tags(&d.tags))
        .unwrap_or_else(|| read.owner.creation_tags());
    create(
        ses,
        &target.name,
        &tags,
        creation_key_length(si, target),
        mail_from(si, target),
    )
    .await
}

/// Brings MAIL FROM or the DKIM key length in line with the spec.
async fn configure<S: SesApi>(
    ses: &S,
    target: &Target,
    mut l: Lifecycle,
    mail_from: Option<Option<String>>,
    key_length: Option<String>,
    now: Timestamp,
) -> Result<Lifecycle, Error> {
    if let Some(mf) = mail_from {
        ses.put_mail_from(&target.name, mf.as_deref()).await?;
    }
    if let Some(kl) = key_length {
        match ses.put_dkim_key_length(&target.name, &kl).await {
            Ok(()) => l.key_length_changed = Some(now),
            // Changed in SES within the day by someone else: SES says no until a day has
            // passed, which is counted from now (SES does not say since when).
            Err(SesError::Rejected(why)) => {
                tracing::info!(reason = why, "SES refused the key length change");
                l.key_length_changed = Some(now);
            }
            Err(e) => return Err(e.into()),
        }
    }
    l.details = get(ses, &target.name).await?;
    Ok(l)
}

/// An identity found already there when creating it: read again at once (see
/// [`Created::AlreadyThere`]).
fn already_there<B: Backends>(ctx: &Context<B>, key: &SesKey, name: &str) -> Action {
    ctx.mark_dirty(key, name, Stale::Unread);
    Action::requeue(decide::AT_ONCE)
}

/// What creating an identity came to.
#[derive(Debug)]
pub(super) enum Created {
    /// Created by us, with its MAIL FROM domain: its details (read when the answer lacked
    /// them; `None` if it vanished meanwhile).
    New(Option<IdentityDetails>),
    /// Created since it was read, perhaps by someone else, perhaps for another namespace.
    /// Nothing is done to it here: the next reconcile reads it, and its tags decide (share it,
    /// leave it alone, or configure it if it is ours).
    AlreadyThere,
}

/// Creates the identity with its MAIL FROM domain.
pub(super) async fn create(
    ses: &impl SesApi,
    name: &str,
    tags: &[(String, String)],
    key_length: Option<&str>,
    mail_from: Option<&str>,
) -> Result<Created, Error> {
    let created = match ses.create_identity(name, tags, key_length).await {
        Ok(created) => created,
        Err(SesError::AlreadyExists) => return Ok(Created::AlreadyThere),
        Err(e) => return Err(e.into()),
    };
    if let Some(mf) = mail_from {
        ses.put_mail_from(name, Some(mf)).await?;
    }
    let created = created.map(|d| IdentityDetails {
        mail_from_domain: mail_from.map(str::to_string),
        ..d
    });
    match created {
        Some(details) => Ok(Created::New(Some(details))),
        None => get(ses, name).await.map(Created::New),
    }
}

/// The identity's details, `None` when SES does not know it.
pub(super) async fn get(ses: &impl SesApi, name: &str) -> Result<Option<IdentityDetails>, Error> {
    match ses.get_identity(name).await {
        Ok(d) => Ok(Some(d)),
        Err(SesError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
