//! Tenancy (pure): which namespace may claim which domain, across namespaces.
//!
//! A **claim** is a SenderIdentity the per-EmailSettings policy admits (its identity's domain)
//! or an EmailSettings that sends through SES or the default relay (its `from` domain) — the
//! two ways a namespace gets mail sent as a domain with the platform's credentials. An
//! `ExternalSmtp` EmailSettings is not a claim: its own server decides what it may send.
//!
//! * A domain a SenderPolicy names (the domain, a subdomain or a parent of it) is **governed**:
//!   only namespaces a policy grants it to may claim it.
//! * A domain no policy names is **held** by the first namespace that claims it (oldest
//!   object first); another namespace's claim on it, a subdomain or a parent is refused.
//! * Granted namespaces may each verify their own SES identities of a governed domain, but two
//!   namespaces share one SES identity (same identity, account and region) only when one
//!   policy grants the domain to both with `shareIdentities`.
//! * `delivery: Default` needs the namespace in `--default-relay-namespaces` or a policy
//!   granting it `defaultRelay` for the `from` domain.
//!
//! Claims are judged oldest first, and a refused claim holds nothing, so re-applying the same
//! manifests always gives the same verdicts, and deleting a holder promotes the next claim.

use super::Verdict;
use crate::crd::conditions::reasons;
use crate::crd::sender_policy::SenderPolicy;
use crate::names::{DomainName, EmailAddress, IdentityName};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// One SenderPolicy, as the judge reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub policy: String,
    pub namespaces: Vec<String>,
    pub selector: Option<LabelSelector>,
    pub domains: Vec<DomainName>,
    pub share: bool,
    pub default_relay: bool,
    /// The Secret (in the policy namespace) with the granted namespaces' relay credential.
    pub relay_credentials: Option<String>,
    pub adopt: bool,
    /// Role ARNs, or `…:role/*` for an account's every role.
    pub roles: Vec<String>,
    pub publish_records: bool,
}

impl Grant {
    /// The policy's grant (domains that do not parse are the schema's business, skipped).
    pub fn of(policy: &SenderPolicy) -> Self {
        Self {
            policy: policy.metadata.name.clone().unwrap_or_default(),
            namespaces: policy.spec.namespaces.clone(),
            selector: policy.spec.namespace_selector.clone(),
            domains: policy
                .spec
                .domains
                .iter()
                .filter_map(|d| DomainName::parse(d).ok())
                .collect(),
            share: policy.spec.share_identities,
            default_relay: policy.spec.default_relay,
            relay_credentials: policy
                .spec
                .relay_credentials_secret_ref
                .as_ref()
                .map(|r| r.name.clone()),
            adopt: policy.spec.adopt_existing,
            roles: policy.spec.role_arns.clone(),
            publish_records: policy.spec.publish_records,
        }
    }

    /// Whether it lets the operator assume `role`.
    fn allows_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| match r.strip_suffix('*') {
            Some(prefix) => role.starts_with(prefix),
            None => r == role,
        })
    }

    /// Whether it names a domain that `d` is within, or that is within `d`.
    fn governs(&self, d: &DomainName) -> bool {
        self.domains
            .iter()
            .any(|g| d.is_within(g) || g.is_within(d))
    }

    /// Whether it grants `d` (a named domain or a subdomain of one).
    fn covers(&self, d: &DomainName) -> bool {
        self.domains.iter().any(|g| d.is_within(g))
    }

    /// Whether it grants `namespace`, by name or by selector: an empty selector selects every
    /// namespace; any other needs the namespace's labels, and selects nothing where they are
    /// not known.
    fn grants_namespace(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || match (&self.selector, labels) {
                (Some(selector), _) if is_empty(selector) => true,
                (Some(selector), Some(labels)) => selects(selector, labels),
                _ => false,
            }
    }
}

fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether a label selector selects these labels (matchLabels and matchExpressions, ANDed;
/// an empty selector selects everything, as in Kubernetes).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

/// Where an SES identity lives: one account and region (so two SenderIdentities naming the
/// same identity there share one SES identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SesScope {
    pub region: String,
    /// The role's account; `None` for the operator's own credentials.
    pub account: Option<String>,
}

/// What a claim is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A SenderIdentity's identity, verified in SES there.
    Identity { id: IdentityName, ses: SesScope },
    /// An EmailSettings' `from`, sent through SES or (`default_relay`) the default relay.
    From {
        address: EmailAddress,
        default_relay: bool,
    },
}

/// One object's claim on a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub namespace: String,
    /// `SenderIdentity` or `EmailSettings`.
    pub kind: &'static str,
    pub name: String,
    pub created: Option<Timestamp>,
    pub claimed: Claimed,
    /// The IAM role the operator would assume for it (`advancedSmtp.roleArn`).
    pub role: Option<String>,
}

impl Claim {
    pub fn domain(&self) -> &DomainName {
        match &self.claimed {
            Claimed::Identity { id, .. } => id.domain(),
            Claimed::From { address, .. } => address.domain(),
        }
    }

    /// Oldest first (objects not created yet, as in `plan`, last), then by namespace, kind
    /// and name.
    fn order(&self) -> (bool, Option<Timestamp>, &str, &str, &str) {
        (
            self.created.is_none(),
            self.created,
            &self.namespace,
            self.kind,
            &self.name,
        )
    }

    fn describe(&self) -> String {
        let what = match &self.claimed {
            Claimed::Identity { id, .. } => format!("verifies {id}"),
            Claimed::From { address, .. } => format!("sends from {address}"),
        };
        format!("{} {}/{} {what}", self.kind, self.namespace, self.name)
    }
}

/// What the judge sees of the cluster.
pub trait World {
    /// Every SenderPolicy in force.
    fn grants(&self) -> &[Grant];
    /// Where the policies live (for messages).
    fn policy_namespace(&self) -> &str;
    /// A namespace's labels, when the operator can read them.
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
    /// Whether `--default-relay-namespaces` lets `namespace` use the default relay.
    fn relay_allowed(&self, namespace: &str) -> bool;
    /// Every claim of a namespace other than `other_than` on a domain within `domain` or that
    /// `domain` is within.
    fn overlapping(&self, domain: &DomainName, other_than: &str) -> Vec<Claim>;
    /// [`World::overlapping`], SenderIdentities' claims only (all that a claim on a domain a
    /// policy governs can collide with).
    fn overlapping_identities(&self, domain: &DomainName, other_than: &str) -> Vec<Claim> {
        let mut claims = self.overlapping(domain, other_than);
        claims.retain(|c| matches!(c.claimed, Claimed::Identity { .. }));
        claims
    }
}

/// The grants that give `namespace` the domain `domain` (it, or a parent of it).
pub fn grants_of<'w, W: World>(
    world: &'w W,
    namespace: &str,
    domain: &DomainName,
) -> Vec<&'w Grant> {
    let labels = world.labels(namespace);
    world
        .grants()
        .iter()
        .filter(|g| g.covers(domain) && g.grants_namespace(namespace, labels.as_ref()))
        .collect()
}

/// Whether a policy lets `namespace` adopt an existing SES identity of `domain`.
pub fn may_adopt(world: &impl World, namespace: &str, domain: &DomainName) -> bool {
    grants_of(world, namespace, domain).iter().any(|g| g.adopt)
}

/// Whether a policy lets `namespace` publish `domain`'s records through external-dns.
pub fn may_publish_records(world: &impl World, namespace: &str, domain: &DomainName) -> bool {
    grants_of(world, namespace, domain)
        .iter()
        .any(|g| g.publish_records)
}

/// The Secret (in the policy namespace) with `namespace`'s own credential on the default relay
/// for `from` domain, when a policy names one.
pub fn relay_credentials(
    world: &impl World,
    namespace: &str,
    domain: &DomainName,
) -> Option<String> {
    grants_of(world, namespace, domain)
        .into_iter()
        .filter(|g| g.default_relay)
        .find_map(|g| g.relay_credentials.clone())
}

/// Whether `namespaces` (as `--default-relay-namespaces` lists them; `*` for all) names
/// `namespace`.
pub fn listed(namespaces: &[String], namespace: &str) -> bool {
    namespaces.iter().any(|n| n == "*" || n == namespace)
}

/// A cluster as a list of claims (what `plan` reads from its inputs).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub grants: Vec<Grant>,
    pub policy_namespace: String,
    /// The labels of the namespaces known (others' are unknown).
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
    pub relay_namespaces: Vec<String>,
    pub claims: Vec<Claim>,
}

impl World for Snapshot {
    fn grants(&self) -> &[Grant] {
        &self.grants
    }

    fn policy_namespace(&self) -> &str {
        &self.policy_namespace
    }

    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.labels.get(namespace).cloned()
    }

    fn relay_allowed(&self, namespace: &str) -> bool {
        listed(&self.relay_namespaces, namespace)
    }

    fn overlapping(&self, domain: &DomainName, other_than: &str) -> Vec<Claim> {
        self.claims
            .iter()
            .filter(|c| c.namespace != other_than)
            .filter(|c| c.domain().is_within(domain) || domain.is_within(c.domain()))
            .cloned()
            .collect()
    }
}

/// Judges claims, remembering the verdicts on the earlier claims it needed.
pub struct Judge<'w, W: World> {
    world: &'w W,
    memo: RefCell<HashMap<(String, &'static str, String), Verdict>>,
}

impl<'w, W: World> Judge<'w, W> {
    pub fn new(world: &'w W) -> Self {
        Self {
            world,
            memo: RefCell::default(),
        }
    }

    /// The verdict on one claim: `Admitted` (with the claimed identity for a SenderIdentity,
    /// the from domain for an EmailSettings) or `Rejected` with the reason and what to change.
    pub fn judge(&self, claim: &Claim) -> Verdict {
        let key = (claim.namespace.clone(), claim.kind, claim.name.clone());
        if let Some(v) = self.memo.borrow().get(&key) {
            return v.clone();
        }
        let verdict = match self.problem(claim) {
            Some((reason, message)) => Verdict::Rejected { reason, message },
            None => Verdict::Admitted(match &claim.claimed {
                Claimed::Identity { id, .. } => id.clone(),
                Claimed::From { address, .. } => IdentityName::Domain(address.domain().clone()),
            }),
        };
        self.memo.borrow_mut().insert(key, verdict.clone());
        verdict
    }

    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.world.labels(namespace)
    }

    fn granted(&self, grant: &Grant, namespace: &str) -> bool {
        grant.grants_namespace(namespace, self.labels(namespace).as_ref())
    }

    fn problem(&self, claim: &Claim) -> Option<(&'static str, String)> {
        let domain = claim.domain();
        let ns = claim.namespace.as_str();
        let policies = self.world.policy_namespace();
        if let Some(role) = &claim.role
            && !self
                .world
                .grants()
                .iter()
                .any(|g| g.allows_role(role) && self.granted(g, ns))
        {
            return Some((
                reasons::ROLE_NOT_GRANTED,
                format!(
                    "namespace {ns} may not have the operator assume {role}: no SenderPolicy in namespace {policies} grants it that role (roleArns); remove advancedSmtp.roleArn to use the operator's own credentials, or ask the platform team for the grant"
                ),
            ));
        }
        if let Claimed::From {
            default_relay: true,
            ..
        } = claim.claimed
        {
            let by_policy = self
                .world
                .grants()
                .iter()
                .any(|g| g.default_relay && g.covers(domain) && self.granted(g, ns));
            if !by_policy && !self.world.relay_allowed(ns) {
                return Some((
                    reasons::DEFAULT_RELAY_NOT_ALLOWED,
                    format!(
                        "namespace {ns} may not use the default relay: it is not among the operator's --default-relay-namespaces, and no SenderPolicy in namespace {policies} grants it defaultRelay for {domain}; ask the platform team for one, or use delivery ExternalSmtp or AdvancedSmtp"
                    ),
                ));
            }
        }
        let governing: Vec<&Grant> = self
            .world
            .grants()
            .iter()
            .filter(|g| g.governs(domain))
            .collect();
        if !governing.is_empty()
            && !governing
                .iter()
                .any(|g| g.covers(domain) && self.granted(g, ns))
        {
            let named: Vec<String> = governing
                .iter()
                .map(|g| format!("{} (grants {})", g.policy, granted_to(g)))
                .collect();
            return Some((
                reasons::DOMAIN_NOT_GRANTED,
                format!(
                    "{domain} is governed by SenderPolicy {} in namespace {policies}, and namespace {ns} is not granted it; ask the platform team to grant {domain} to {ns} in a SenderPolicy",
                    named.join(", ")
                ),
            ));
        }
        // The earlier claims of other namespaces that would refuse this one if admitted
        // themselves. Without a governing policy, any: the first to claim a domain holds it.
        // With one, only a SenderIdentity of the same SES identity that no policy lets both
        // share (an EmailSettings' from domain, granted, collides with nothing). Only those are
        // judged in turn, so a domain that a policy grants to many namespaces costs one read
        // of the identities that could collide, not every claim and its earlier claims.
        if governing.is_empty() {
            let e = self.first_admitted(claim, self.world.overlapping(domain, ns))?;
            return Some((
                reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE,
                format!(
                    "{domain} is held by namespace {} ({}): a domain no SenderPolicy names belongs to the first namespace that claims it. Ask the platform team for a SenderPolicy in namespace {policies} granting {domain} to both {} and {ns} (with shareIdentities: true to share one SES identity)",
                    e.namespace,
                    e.describe(),
                    e.namespace
                ),
            ));
        }
        let Claimed::Identity { id, ses } = &claim.claimed else {
            return None;
        };
        let mut colliding = self.world.overlapping_identities(domain, ns);
        colliding.retain(|e| match &e.claimed {
            Claimed::Identity {
                id: held,
                ses: held_ses,
            } => {
                super::same_identity(id, held)
                    && ses == held_ses
                    && !governing.iter().any(|g| {
                        g.share
                            && g.covers(domain)
                            && self.granted(g, ns)
                            && self.granted(g, &e.namespace)
                    })
            }
            Claimed::From { .. } => false,
        });
        let e = self.first_admitted(claim, colliding)?;
        Some((
            reasons::IDENTITY_SHARING_NOT_ALLOWED,
            format!(
                "{id} is already claimed in SES {} by namespace {} ({}), and no SenderPolicy in namespace {policies} lets {} and {ns} share it; ask the platform team to set shareIdentities: true on a SenderPolicy granting {domain} to both",
                ses.region,
                e.namespace,
                e.describe(),
                e.namespace
            ),
        ))
    }

    /// The oldest of `others` made before `claim` in another namespace that is admitted itself
    /// (a refused claim holds nothing).
    fn first_admitted(&self, claim: &Claim, others: Vec<Claim>) -> Option<Claim> {
        let mut earlier: Vec<Claim> = others
            .into_iter()
            .filter(|e| e.namespace != claim.namespace && e.order() < claim.order())
            .collect();
        earlier.sort_by(|a, b| a.order().cmp(&b.order()));
        earlier.into_iter().find(|e| self.judge(e).is_admitted())
    }
}

fn granted_to(g: &Grant) -> String {
    let mut parts: Vec<String> = g.namespaces.clone();
    if g.selector.is_some() {
        parts.push("namespaces selected by label".into());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
