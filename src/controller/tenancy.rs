//! Tenancy in the controllers: which object claims which domain (an index fed by the two
//! object watches), the tenancy judge's view of the cluster read from the caches
//! ([`crate::policy::tenancy`] decides), and who to wake when a claim changes.

use super::backends::Backends;
use super::context::Context;
use super::index::NamespaceIndex;
use super::memory::{self, Change, Relisted, key_of};
use super::packed::Packed;
use crate::crd::email_settings::Delivery;
use crate::crd::{EmailSettings, SenderIdentity};
use crate::names::{DomainName, EmailAddress, IdentityName};
use crate::policy::tenancy::{self, Claim, Claimed, Grant, Judge, SesScope, World};
use crate::policy::{self, Verdict};
use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// A domain as an index key: its labels reversed (`com.yourcompany.en`), so a domain's
/// subdomains sort right after it.
fn reversed(d: &DomainName) -> String {
    d.as_str().rsplit('.').collect::<Vec<_>>().join(".")
}

/// The domain a SenderIdentity claims (its identity's).
fn identity_domain(si: &SenderIdentity) -> Option<DomainName> {
    IdentityName::parse(&si.spec.identity)
        .ok()
        .map(|id| id.domain().clone())
}

/// The domain an EmailSettings claims: its `from` domain, when it sends through SES or the
/// default relay (an `ExternalSmtp` server decides for itself what it may send).
fn from_domain(es: &EmailSettings) -> Option<DomainName> {
    matches!(es.spec.delivery, Delivery::Default | Delivery::AdvancedSmtp)
        .then(|| EmailAddress::parse(&es.spec.from).ok())
        .flatten()
        .map(|a| a.domain().clone())
}

/// Objects by the domain they claim: one ordered set of (domain, namespace, name) rather than
/// a set per domain (a B-tree node costs about 540 bytes, however few it holds, and most
/// domains are claimed by one object).
#[derive(Debug, Default)]
struct Domains {
    by_domain: BTreeSet<(String, String, String)>,
    of: HashMap<(String, String), String>,
}

impl Domains {
    fn set(&mut self, key: (String, String), domain: Option<String>) {
        if let Some(old) = self.of.remove(&key) {
            self.by_domain.remove(&(old, key.0.clone(), key.1.clone()));
        }
        if let Some(d) = domain {
            self.by_domain
                .insert((d.clone(), key.0.clone(), key.1.clone()));
            self.of.insert(key, d);
        }
    }

    /// The objects claiming domains from `lo` (included) to `hi` (excluded).
    fn claiming<'a>(&'a self, lo: &str, hi: &str) -> impl Iterator<Item = (String, String)> + 'a {
        let from = (lo.to_string(), String::new(), String::new());
        let to = (hi.to_string(), String::new(), String::new());
        self.by_domain
            .range(from..to)
            .map(|(_, ns, name)| (ns.clone(), name.clone()))
    }

    /// The objects claiming `key`, a parent of it or a subdomain of it.
    fn overlapping(&self, key: &str) -> Vec<(String, String)> {
        let labels: Vec<&str> = key.split('.').collect();
        let mut out: Vec<(String, String)> = (1..=labels.len())
            .flat_map(|i| {
                let domain = labels[..i].join(".");
                // Exactly `domain`: NUL sorts before every character a domain holds.
                let end = format!("{domain}\0");
                self.claiming(&domain, &end).collect::<Vec<_>>()
            })
            .collect();
        out.extend(self.claiming(&format!("{key}."), &format!("{key}/")));
        out
    }
}

/// The (namespace, name) of SenderIdentities, and of EmailSettings.
pub type Claimers = (Vec<(String, String)>, Vec<(String, String)>);

/// Which SenderIdentities and EmailSettings claim which domain, kept in step with their
/// watches (like the namespace index, so a lookup costs the claims of one domain family, not
/// the cluster).
#[derive(Clone, Default)]
pub struct ClaimIndex {
    identities: Arc<Mutex<Relisted<Domains>>>,
    settings: Arc<Mutex<Relisted<Domains>>>,
}

fn observe_into<K: kube::Resource>(
    map: &Mutex<Relisted<Domains>>,
    event: &watcher::Event<K>,
    domain: impl Fn(&K) -> Option<DomainName>,
) {
    if let Ok(mut m) = map.lock() {
        m.on_event(event, |d, change| match change {
            Change::Present(obj) => d.set(key_of(obj), domain(obj).map(|x| reversed(&x))),
            Change::Gone(obj) => d.set(key_of(obj), None),
        });
    }
}

impl ClaimIndex {
    /// Applies one event of the SenderIdentity watch.
    pub fn observe_identities(&self, event: &watcher::Event<DeserializeGuard<SenderIdentity>>) {
        observe_into(&self.identities, event, |g| {
            g.0.as_ref().ok().and_then(identity_domain)
        });
    }

    /// Applies one event of the EmailSettings watch.
    pub fn observe_settings(&self, event: &watcher::Event<EmailSettings>) {
        observe_into(&self.settings, event, from_domain);
    }

    /// The SenderIdentities and the EmailSettings that claim `domain`, a parent or a
    /// subdomain of it.
    pub fn overlapping(&self, domain: &DomainName) -> Claimers {
        let key = reversed(domain);
        let of = |m: &Mutex<Relisted<Domains>>| {
            m.lock()
                .map(|m| m.live().overlapping(&key))
                .unwrap_or_default()
        };
        (of(&self.identities), of(&self.settings))
    }
}

/// Where an EmailSettings' SES identities live: its region, in the role's account or the
/// operator's own.
pub fn scope(es: &EmailSettings) -> Option<SesScope> {
    let a = es.spec.advanced_smtp.as_ref()?;
    Some(SesScope {
        region: a.region.clone(),
        account: a
            .role_arn
            .as_deref()
            .and_then(crate::ses::aws::account_of_role),
    })
}

/// An EmailSettings' claim on its `from` domain, if it makes one.
pub fn settings_claim(es: &EmailSettings) -> Option<Claim> {
    from_domain(es)?;
    Some(Claim {
        namespace: es.namespace().unwrap_or_default(),
        kind: "EmailSettings",
        name: es.name_any(),
        created: es.metadata.creation_timestamp.as_ref().map(|t| t.0),
        claimed: Claimed::From {
            address: EmailAddress::parse(&es.spec.from).ok()?,
            default_relay: es.spec.delivery == Delivery::Default,
        },
        role: role_of(es),
    })
}

/// The role the operator would assume for an EmailSettings' SES calls.
fn role_of(es: &EmailSettings) -> Option<String> {
    (es.spec.delivery == Delivery::AdvancedSmtp || es.spec.advanced_smtp.is_some())
        .then(|| es.spec.advanced_smtp.as_ref()?.role_arn.clone())
        .flatten()
}

/// A SenderIdentity's claim on `id` (which its EmailSettings' policy admitted).
pub fn identity_claim(si: &SenderIdentity, id: &IdentityName, es: &EmailSettings) -> Option<Claim> {
    Some(Claim {
        namespace: si.namespace().unwrap_or_default(),
        kind: "SenderIdentity",
        name: si.name_any(),
        created: si.metadata.creation_timestamp.as_ref().map(|t| t.0),
        claimed: Claimed::Identity {
            id: id.clone(),
            ses: scope(es)?,
        },
        role: role_of(es),
    })
}

/// The cluster as the tenancy judge sees it, read from the caches.
pub struct Cluster<'a, B: Backends> {
    ctx: &'a Context<B>,
    grants: Vec<Grant>,
    /// The per-EmailSettings verdicts of a namespace's SenderIdentities, by (namespace,
    /// EmailSettings), computed once per judgement.
    verdicts: RefCell<HashMap<(String, String), BTreeMap<String, Verdict>>>,
}

impl<'a, B: Backends> Cluster<'a, B> {
    pub fn new(ctx: &'a Context<B>) -> Self {
        Self {
            grants: ctx
                .caches
                .policies
                .state()
                .iter()
                .map(|p| Grant::of(p))
                .collect(),
            ctx,
            verdicts: RefCell::default(),
        }
    }

    fn settings(&self, ns: &str, name: &str) -> Option<Arc<EmailSettings>> {
        self.ctx.settings(ns, name)
    }

    /// The claim of the SenderIdentity `ns/name`, if the policy of its EmailSettings admits it.
    fn identity(&self, ns: &str, name: &str) -> Option<Claim> {
        let packed = self
            .ctx
            .caches
            .identities
            .get(&ObjectRef::new(name).within(ns))?;
        let si = &packed.get()?;
        let es_name = &si.spec.email_settings_ref.name;
        let es = self.settings(ns, es_name)?;
        let key = (ns.to_string(), es_name.clone());
        let verdict = {
            let mut verdicts = self.verdicts.borrow_mut();
            let of_settings = verdicts
                .entry(key)
                .or_insert_with(|| policy::decide(es_name, Some(&es), &self.ctx.identities_in(ns)));
            of_settings.get(name).cloned()
        };
        match verdict? {
            Verdict::Admitted(id) => identity_claim(si, &id, &es),
            Verdict::Rejected { .. } => None,
        }
    }

    /// The admitted claims of the SenderIdentities `(namespace, name)` outside `other_than`.
    fn identity_claims(&self, identities: Vec<(String, String)>, other_than: &str) -> Vec<Claim> {
        identities
            .into_iter()
            .filter(|(ns, _)| ns != other_than)
            .filter_map(|(ns, name)| self.identity(&ns, &name))
            .collect()
    }
}

impl<B: Backends> World for Cluster<'_, B> {
    fn grants(&self) -> &[Grant] {
        &self.grants
    }

    fn policy_namespace(&self) -> &str {
        &self.ctx.config.tenancy.policy_namespace
    }

    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let ns = self
            .ctx
            .caches
            .namespaces
            .as_ref()?
            .get(&ObjectRef::new(namespace))?;
        Some(ns.metadata.labels.clone().unwrap_or_default())
    }

    fn relay_allowed(&self, namespace: &str) -> bool {
        tenancy::listed(&self.ctx.config.tenancy.default_relay_namespaces, namespace)
    }

    fn overlapping(&self, domain: &DomainName, other_than: &str) -> Vec<Claim> {
        let (identities, settings) = self.ctx.caches.claims.overlapping(domain);
        let mut claims = self.identity_claims(identities, other_than);
        claims.extend(
            settings
                .into_iter()
                .filter(|(ns, _)| ns != other_than)
                .filter_map(|(ns, name)| settings_claim(&*self.settings(&ns, &name)?)),
        );
        claims
    }

    fn overlapping_identities(&self, domain: &DomainName, other_than: &str) -> Vec<Claim> {
        let (identities, _) = self.ctx.caches.claims.overlapping(domain);
        self.identity_claims(identities, other_than)
    }
}

/// The tenancy verdict on a claim, judged against the caches.
pub fn judge<B: Backends>(ctx: &Context<B>, claim: &Claim) -> Verdict {
    let cluster = Cluster::new(ctx);
    Judge::new(&cluster).judge(claim)
}

/// What the policies let a namespace do with a domain beyond claiming it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    /// Adopt an existing SES identity of it.
    pub adopt: bool,
    /// Publish its records through external-dns.
    pub publish_records: bool,
}

/// [`Rights`] of `namespace` on `domain`, from the cached policies.
pub fn rights<B: Backends>(ctx: &Context<B>, namespace: &str, domain: &DomainName) -> Rights {
    let cluster = Cluster::new(ctx);
    Rights {
        adopt: tenancy::may_adopt(&cluster, namespace, domain),
        publish_records: tenancy::may_publish_records(&cluster, namespace, domain),
    }
}

/// The Secret in the policy namespace with `namespace`'s own credential on the default relay
/// for `from`'s domain, when a policy names one.
pub fn relay_credentials<B: Backends>(
    ctx: &Context<B>,
    namespace: &str,
    from: &EmailAddress,
) -> Option<String> {
    tenancy::relay_credentials(&Cluster::new(ctx), namespace, from.domain())
}

/// Wakes, when the claims of a namespace may have changed, the objects of other namespaces
/// whose claims overlap them: a claim's verdict depends on the older claims of other
/// namespaces on the same domains (and on what the policy of their EmailSettings admits).
/// The initial listing wakes nobody (every object is reconciled then anyway).
pub struct ClaimTriggers {
    seen: memory::Seen<u64>,
    identities: Store<Packed<SenderIdentity>>,
    identities_index: NamespaceIndex,
    claims: ClaimIndex,
    wake_identities: UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
    wake_settings: UnboundedSender<ObjectRef<Packed<EmailSettings>>>,
}

fn hash_of(parts: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl ClaimTriggers {
    pub fn new(
        identities: Store<Packed<SenderIdentity>>,
        identities_index: NamespaceIndex,
        claims: ClaimIndex,
        wake_identities: UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
        wake_settings: UnboundedSender<ObjectRef<Packed<EmailSettings>>>,
    ) -> Self {
        Self {
            seen: memory::Seen::default(),
            identities,
            identities_index,
            claims,
            wake_identities,
            wake_settings,
        }
    }

    /// The SenderIdentities of `ns` naming the EmailSettings `settings`: their domains are
    /// what that EmailSettings' policy admits, so they change with it.
    fn domains_of_settings(&self, ns: &str, settings: &str) -> Vec<DomainName> {
        self.identities_index
            .objects(&self.identities, ns)
            .iter()
            .filter_map(|p| p.get())
            .filter(|si| si.spec.email_settings_ref.name == settings)
            .filter_map(|si| identity_domain(&si))
            .collect()
    }

    /// Wakes the other namespaces' claimers of these domains.
    fn wake(&self, ns: &str, domains: &[DomainName]) {
        let mut identities = BTreeSet::new();
        let mut settings = BTreeSet::new();
        for d in domains {
            let (i, s) = self.claims.overlapping(d);
            identities.extend(i.into_iter().filter(|(n, _)| n != ns));
            settings.extend(s.into_iter().filter(|(n, _)| n != ns));
        }
        for (n, name) in identities {
            let _ = self
                .wake_identities
                .unbounded_send(ObjectRef::new(&name).within(&n));
        }
        for (n, name) in settings {
            let _ = self
                .wake_settings
                .unbounded_send(ObjectRef::new(&name).within(&n));
        }
    }

    /// Whether `value` differs from what was seen of `obj` (always, for a deletion).
    fn changed<K: kube::Resource>(&mut self, obj: &K, deleted: bool, value: u64) -> bool {
        let key = memory::uid_of(obj);
        if deleted {
            self.seen.forget(&key);
            return true;
        }
        self.seen.changed(key, value)
    }

    /// Applies one event of the SenderIdentity watch (after the caches and the claim index).
    pub fn observe_identity(&mut self, event: &watcher::Event<DeserializeGuard<SenderIdentity>>) {
        let Some((guard, deleted, listing)) = self.split(event) else {
            return;
        };
        let Ok(si) = &guard.0 else {
            return;
        };
        let value = hash_of((
            serde_json::to_string(&si.spec).unwrap_or_default(),
            si.metadata.deletion_timestamp.is_some(),
        ));
        if !self.changed(si, deleted, value) || listing {
            return;
        }
        let ns = si.namespace().unwrap_or_default();
        // Its own domain, and its siblings' (a slot it frees or takes changes theirs).
        let domains = self.domains_of_settings(&ns, &si.spec.email_settings_ref.name);
        let own = identity_domain(si);
        self.wake(&ns, &domains.into_iter().chain(own).collect::<Vec<_>>());
    }

    /// Applies one event of the EmailSettings watch (after the caches and the claim index).
    pub fn observe_settings(&mut self, event: &watcher::Event<EmailSettings>) {
        let Some((es, deleted, listing)) = self.split(event) else {
            return;
        };
        let value = hash_of(serde_json::to_string(&es.spec).unwrap_or_default());
        if !self.changed(es, deleted, value) || listing {
            return;
        }
        let ns = es.namespace().unwrap_or_default();
        let domains = self.domains_of_settings(&ns, &es.name_any());
        let own = EmailAddress::parse(&es.spec.from)
            .ok()
            .map(|a| a.domain().clone());
        self.wake(&ns, &domains.into_iter().chain(own).collect::<Vec<_>>());
    }

    /// An event's object, whether it is a deletion, and whether it comes from a listing;
    /// `None` for the listing's markers (`Init` forgets what was seen: everything listed
    /// counts as new).
    fn split<'e, K>(&mut self, event: &'e watcher::Event<K>) -> Option<(&'e K, bool, bool)> {
        match event {
            watcher::Event::Apply(obj) => Some((obj, false, false)),
            watcher::Event::InitApply(obj) => Some((obj, false, true)),
            watcher::Event::Delete(obj) => Some((obj, true, false)),
            watcher::Event::Init => {
                self.seen.clear();
                None
            }
            watcher::Event::InitDone => None,
        }
    }
}

/// Wakes every SenderIdentity and EmailSettings: a SenderPolicy, or the labels of a namespace
/// a policy may select, changed what every claim's verdict may be. Rare, so not narrowed.
pub fn wake_everyone(
    identities: &Store<Packed<SenderIdentity>>,
    settings: &Store<Packed<EmailSettings>>,
    wake_identities: &UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
    wake_settings: &UnboundedSender<ObjectRef<Packed<EmailSettings>>>,
) {
    for p in identities.state() {
        if p.is_valid() {
            let _ = wake_identities.unbounded_send(ObjectRef::from_obj(p.as_ref()));
        }
    }
    for es in settings.state() {
        let _ = wake_settings.unbounded_send(ObjectRef::from_obj(es.as_ref()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn si(ns: &str, name: &str, identity: &str) -> DeserializeGuard<SenderIdentity> {
        let mut si = SenderIdentity::new(
            name,
            serde_json::from_value(serde_json::json!({
                "identity": identity,
                "emailSettingsRef": {"name": "notifications"},
            }))
            .expect("spec"),
        );
        si.metadata.namespace = Some(ns.into());
        DeserializeGuard(Ok(si))
    }

    fn domain(d: &str) -> DomainName {
        DomainName::parse(d).expect("domain")
    }

    #[test]
    fn the_index_finds_the_domain_its_parents_and_its_subdomains_only() {
        let index = ClaimIndex::default();
        for (ns, name, id) in [
            ("a", "apex", "yourcompany.com"),
            ("b", "en", "en.yourcompany.com"),
            ("c", "mail", "noreply@mail.en.yourcompany.com"),
            ("d", "other", "yourcompany.net"),
            ("e", "lookalike", "notyourcompany.com"),
            ("f", "twin", "yourcompany.net"),
        ] {
            index.observe_identities(&watcher::Event::Apply(si(ns, name, id)));
        }
        let names = |d: &str| {
            let mut v: Vec<String> = index
                .overlapping(&domain(d))
                .0
                .into_iter()
                .map(|(_, n)| n)
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("en.yourcompany.com"), ["apex", "en", "mail"]);
        assert_eq!(names("de.yourcompany.com"), ["apex"]);
        assert_eq!(names("yourcompany.com"), ["apex", "en", "mail"]);
        assert_eq!(names("yourcompany.net"), ["other", "twin"]);

        // A change of identity moves it; a deletion removes it.
        index.observe_identities(&watcher::Event::Apply(si("b", "en", "de.yourcompany.com")));
        assert_eq!(names("en.yourcompany.com"), ["apex", "mail"]);
        index.observe_identities(&watcher::Event::Delete(si("a", "apex", "yourcompany.com")));
        assert_eq!(names("en.yourcompany.com"), ["mail"]);
    }
}
