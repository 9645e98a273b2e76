//! What both controllers share: the Kubernetes client and caches, the backends, the clock, the
//! settings, what this process remembers of each object, Events and status writes.

use super::backends::{Backends, SesKey};
use super::config::Config;
use super::email_settings::decide::Memo;
use super::events::{self, Reporter};
use super::index::NamespaceIndex;
use super::memory::PerObject;
use super::packed::{Packed, cache_ref};
use super::secrets::SecretCache;
use super::tenancy::ClaimIndex;
use crate::clock::Clock;
use crate::crd::{
    EmailSettings, EmailSettingsStatus, SenderIdentity, SenderIdentityStatus, SenderPolicy,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "email-operator";

/// The caches the controllers read, and their indexes.
pub struct Caches {
    pub settings: Store<Packed<EmailSettings>>,
    /// Every SenderIdentity, malformed ones included (as errors), so one bad object cannot
    /// stall the rest.
    pub identities: Store<Packed<SenderIdentity>>,
    /// The SenderPolicies of the policy namespace.
    pub policies: Store<SenderPolicy>,
    /// Namespaces (metadata: their labels, for policies' selectors), when the operator watches
    /// the whole cluster; `None` in a namespaced install, which cannot read them.
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    pub settings_index: NamespaceIndex,
    pub identities_index: NamespaceIndex,
    /// Who claims which domain (tenancy).
    pub claims: ClaimIndex,
    pub sync: CacheSync,
}

impl Caches {
    /// Caches over these stores, not yet synced, without policies (see
    /// [`Caches::with_policies`]) or namespaces.
    pub fn new(
        settings: Store<Packed<EmailSettings>>,
        identities: Store<Packed<SenderIdentity>>,
    ) -> Self {
        Self {
            settings,
            identities,
            policies: reflector::store().0,
            namespaces: None,
            settings_index: NamespaceIndex::default(),
            identities_index: NamespaceIndex::default(),
            claims: ClaimIndex::default(),
            sync: CacheSync::new(&[Cache::Settings, Cache::Identities]),
        }
    }

    /// Also reads SenderPolicies from `policies` (and waits for its listing).
    pub fn with_policies(mut self, policies: Store<SenderPolicy>) -> Self {
        self.policies = policies;
        self.sync.expect(Cache::Policies);
        self
    }

    /// Also reads namespaces' labels from `namespaces` (and waits for its listing).
    pub fn with_namespaces(mut self, namespaces: Store<PartialObjectMeta<Namespace>>) -> Self {
        self.namespaces = Some(namespaces);
        self.sync.expect(Cache::Namespaces);
        self
    }
}

/// Which cache a watch fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cache {
    Settings,
    Identities,
    Policies,
    Namespaces,
}

/// Whether each cache holds a complete first listing. Until all do, no reconcile decides
/// anything: a SenderIdentity whose EmailSettings is not cached yet would be rejected as
/// `EmailSettingsNotFound` (and nothing would wake it again), a sibling not cached yet would be
/// missed by the conflict rules, a policy not cached yet would refuse a granted domain, and an
/// EmailSettings would count too few users. Reconciles wait for it ([`CacheSync::wait`])
/// rather than poll.
#[derive(Debug)]
pub struct CacheSync {
    flags: Mutex<HashMap<Cache, tokio::sync::watch::Sender<bool>>>,
}

impl CacheSync {
    /// Waits for these caches.
    pub fn new(caches: &[Cache]) -> Self {
        let sync = Self {
            flags: Mutex::default(),
        };
        for c in caches {
            sync.expect(*c);
        }
        sync
    }

    /// Waits for `cache` too.
    pub fn expect(&self, cache: Cache) {
        if let Ok(mut flags) = self.flags.lock() {
            flags
                .entry(cache)
                .or_insert_with(|| tokio::sync::watch::Sender::new(false));
        }
    }

    fn senders(&self) -> Vec<tokio::sync::watch::Sender<bool>> {
        self.flags
            .lock()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn synced(&self) -> bool {
        self.senders().iter().all(|f| *f.borrow())
    }

    /// Resolves once every cache holds a complete listing (at once after that).
    pub async fn wait(&self) {
        for flag in self.senders() {
            let mut rx = flag.subscribe();
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Marks `cache` synced at its watch's first InitDone — seen after the cache applied it —
    /// and the operator ready once all are. A later re-list changes nothing: the cache keeps
    /// serving the old listing until the new one is complete.
    pub fn observe<K>(&self, cache: Cache, event: &watcher::Event<K>) {
        if !matches!(event, watcher::Event::InitDone) {
            return;
        }
        let Some(flag) = self.flags.lock().ok().and_then(|f| f.get(&cache).cloned()) else {
            return;
        };
        if !flag.send_replace(true) && self.synced() {
            crate::metrics::READY.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("caches synced: ready");
        }
    }
}

/// What this process learned of each object by reconciling it; each entry is dropped when the
/// watch reports the object deleted ([`Context::forget`]).
#[derive(Default)]
pub struct Memory {
    /// The last connection test of each EmailSettings.
    pub tests: PerObject<Memo>,
    /// The status this process last wrote to each object. Only the operator writes status, so
    /// it is the truth for the next reconcile, which may still see an older copy in the cache:
    /// without it a reconcile racing its own write would redo the write and repeat its Events.
    /// Kept as compact JSON: a parsed value costs several times the memory, per object.
    written: PerObject<String>,
    /// When each SenderIdentity was last read from SES, including reads whose result was not
    /// written to its status.
    pub checked: PerObject<k8s_openapi::jiff::Timestamp>,
    /// Identities whose listed SES status changed since they were last read, and what the
    /// listing said, by location (held once, not beside each of its identities) and
    /// [`identity_key`](crate::ses::identity_key).
    dirty: Mutex<HashMap<SesKey, HashMap<String, Stale>>>,
    /// Events published about each object in the current window (see [`EVENT_BUDGET`]).
    events: PerObject<(k8s_openapi::jiff::Timestamp, u32)>,
    /// Connection tests running per namespace (see [`TESTS_PER_NAMESPACE`]).
    tests_running: Mutex<HashMap<String, usize>>,
}

/// Why an identity is to be looked at again before its timer says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// A bulk listing that began at `began` shows a status other than the recorded one:
    /// this status, and whether SES lets the identity send.
    Listed {
        began: k8s_openapi::jiff::Timestamp,
        status: crate::ses::VerificationStatus,
        sending: bool,
    },
    /// Read it from SES: missing from a listing, or found already there when creating it.
    Unread,
}

impl Memory {
    /// The watch shows `status` on the object: once that is the status this process last
    /// wrote, the cache has caught up with the write and its copy is dropped, so the memory
    /// holds only writes in flight, not a copy of every status.
    pub fn cache_shows<S: Serialize>(&self, uid: &str, status: Option<&S>) {
        let Some(status) = status else { return };
        self.written.forget_if(uid, |written| {
            serde_json::to_string(status).is_ok_and(|shown| shown == *written)
        });
    }
}

/// At most this many Events about one object in [`EVENT_WINDOW`]; more are dropped (and
/// logged): a flapping object cannot flood the API server for everyone.
pub const EVENT_BUDGET: u32 = 20;
pub const EVENT_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// At most this many connection tests of one namespace run at once, so a tenant's
/// EmailSettings pointing at black holes cannot hold every reconcile slot.
pub const TESTS_PER_NAMESPACE: usize = 2;

/// One of a namespace's connection-test slots, given back when dropped.
pub struct TestSlot<'a> {
    running: &'a Mutex<HashMap<String, usize>>,
    namespace: String,
}

impl Drop for TestSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock()
            && let Some(n) = running.get_mut(&self.namespace)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.namespace);
            }
        }
    }
}

/// What the controllers share.
pub struct Context<B: Backends> {
    pub client: Client,
    /// Who publishes Events.
    reporter: Reporter,
    pub caches: Caches,
    /// The Secrets the EmailSettings controller read, while current.
    pub secrets: Arc<SecretCache>,
    pub backends: B,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    pub memory: Memory,
    /// The SES account's standing at each location AdvancedSmtp uses.
    pub accounts: super::account::Accounts,
}

impl<B: Backends> Context<B> {
    pub fn new(
        client: Client,
        caches: Caches,
        backends: B,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        Self {
            reporter: Reporter {
                controller: "email-operator".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
            client,
            caches,
            secrets: Arc::default(),
            backends,
            clock,
            accounts: super::account::Accounts::new(config.ses.account_every),
            config,
            memory: Memory::default(),
        }
    }

    /// The status to reconcile from: the one this process last wrote, else the one the cache
    /// holds now. The written copy is dropped once the watch shows it, and the watch shows it
    /// only after the store holds it; so the store is asked after the copy, and never the
    /// snapshot a reconcile began with, which may predate the write (a SenderIdentity whose
    /// status said "created" would be created again).
    fn prior_status<S>(&self, uid: &str, cached: impl FnOnce() -> Option<S>) -> S
    where
        S: Default + serde::de::DeserializeOwned,
    {
        self.memory
            .written
            .get(uid)
            .and_then(|w| serde_json::from_str(&w).ok())
            .or_else(cached)
            .unwrap_or_default()
    }

    /// The status to reconcile `si` from (see [`Context::prior_status`]).
    pub fn identity_prior(&self, si: &SenderIdentity) -> SenderIdentityStatus {
        let now = self
            .caches
            .identities
            .get(&cache_ref(si))
            .and_then(|p| p.get());
        self.prior_of(si, now.as_ref(), |si| si.status.as_ref())
    }

    /// The status to reconcile `es` from (see [`Context::prior_status`]).
    pub fn settings_prior(&self, es: &EmailSettings) -> EmailSettingsStatus {
        let now = self
            .caches
            .settings
            .get(&cache_ref(es))
            .and_then(|p| p.get());
        self.prior_of(es, now.as_ref(), |es| es.status.as_ref())
    }

    /// [`Context::prior_status`] of `obj`, whose cached copy is `now` (if it is the same
    /// object: same uid), else `obj` itself.
    fn prior_of<K: Resource, S: Clone + Default + serde::de::DeserializeOwned>(
        &self,
        obj: &K,
        now: Option<&K>,
        status: impl Fn(&K) -> Option<&S>,
    ) -> S {
        let uid = obj.meta().uid.as_deref().unwrap_or_default();
        self.prior_status(uid, || {
            let same = now.filter(|n| n.meta().uid.as_deref() == Some(uid));
            status(same.unwrap_or(obj)).cloned()
        })
    }

    /// See [`Memory::cache_shows`].
    pub fn cache_shows<S: Serialize>(&self, uid: &str, status: Option<&S>) {
        self.memory.cache_shows(uid, status);
    }

    /// Records a status this process wrote.
    pub fn wrote_status<S: Serialize>(&self, uid: &str, status: &S) {
        if let Ok(v) = serde_json::to_string(status) {
            self.memory.written.set(uid, v);
        }
    }

    /// Forgets what this process learned of an object the watch reports deleted.
    pub fn forget(&self, uid: &str) {
        self.memory.written.forget(uid);
        self.memory.tests.forget(uid);
        self.memory.checked.forget(uid);
        self.memory.events.forget(uid);
    }

    /// A connection-test slot of `namespace`, when it has one free.
    pub fn test_slot(&self, namespace: &str) -> Option<TestSlot<'_>> {
        let mut running = self.memory.tests_running.lock().ok()?;
        let n = running.entry(namespace.to_string()).or_default();
        if *n >= TESTS_PER_NAMESPACE {
            return None;
        }
        *n += 1;
        Some(TestSlot {
            running: &self.memory.tests_running,
            namespace: namespace.to_string(),
        })
    }

    /// Whether one more Event about the object `uid` fits its budget (and counts it).
    fn event_allowed(&self, uid: &str) -> bool {
        let now = self.clock.now();
        let window = k8s_openapi::jiff::SignedDuration::try_from(EVENT_WINDOW).unwrap_or_default();
        let (start, count) = self
            .memory
            .events
            .get(uid)
            .filter(|(start, _)| now.duration_since(*start) < window)
            .unwrap_or((now, 0));
        if count >= EVENT_BUDGET {
            return false;
        }
        self.memory.events.set(uid, (start, count + 1));
        true
    }

    /// The well-formed SenderIdentities of one namespace.
    pub fn identities_in(&self, namespace: &str) -> Vec<SenderIdentity> {
        self.caches
            .identities_index
            .objects(&self.caches.identities, namespace)
            .iter()
            .filter_map(|p| p.get())
            .collect()
    }

    /// The EmailSettings `namespace/name`.
    pub fn settings(&self, namespace: &str, name: &str) -> Option<Arc<EmailSettings>> {
        let key = ObjectRef::new(name).within(namespace);
        self.caches
            .settings
            .get(&key)
            .and_then(|p| p.get())
            .map(Arc::new)
    }

    /// The EmailSettings of one namespace.
    pub fn settings_in(&self, namespace: &str) -> Vec<Arc<EmailSettings>> {
        self.caches
            .settings_index
            .objects(&self.caches.settings, namespace)
            .iter()
            .filter_map(|p| p.get().map(Arc::new))
            .collect()
    }

    /// Marks an identity to be read again (or, for [`Stale::Listed`], to take the listing's
    /// word): the newest mark wins.
    pub fn mark_dirty(&self, key: &SesKey, identity: &str, why: Stale) {
        if let Ok(mut d) = self.memory.dirty.lock() {
            let marks = match d.get_mut(key) {
                Some(marks) => marks,
                None => d.entry(key.clone()).or_default(),
            };
            marks.insert(crate::ses::identity_key(identity), why);
        }
    }

    /// Takes the dirty mark of an identity.
    pub fn take_dirty(&self, key: &SesKey, identity: &str) -> Option<Stale> {
        let mut d = self.memory.dirty.lock().ok()?;
        let marks = d.get_mut(key)?;
        let mark = marks.remove(&crate::ses::identity_key(identity));
        if marks.is_empty() {
            d.remove(key);
        }
        mark
    }

    /// The identity was read from SES at or after `read_at`: a listing that began before then
    /// says nothing newer, and is dropped (the reconcile it triggered would read it twice).
    pub fn settle_dirty(
        &self,
        key: &SesKey,
        identity: &str,
        read_at: k8s_openapi::jiff::Timestamp,
    ) {
        let listed_before = |mark: Option<&Stale>| matches!(mark, Some(Stale::Listed { began, .. }) if *began <= read_at);
        if let Ok(mut d) = self.memory.dirty.lock()
            && let Some(marks) = d.get_mut(key)
        {
            let identity = crate::ses::identity_key(identity);
            if listed_before(marks.get(&identity)) {
                marks.remove(&identity);
            }
            if marks.is_empty() {
                d.remove(key);
            }
        }
    }

    /// Publishes an Event about `obj`; a failure to publish is logged, never fatal.
    ///
    /// Not through kube's `Recorder`: it keeps every Event of the last 6 minutes and scans them
    /// all on each publish (O(N²) while thousands of identities converge), folds Events of one
    /// reason into a series that shows only the first message, and names Events so that long
    /// object names make them invalid (see [`events`]). Ours are published on transitions only,
    /// so there is nothing to fold.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let uid = obj.meta().uid.clone().unwrap_or_default();
        if !uid.is_empty() && !self.event_allowed(&uid) {
            tracing::debug!(reason, "Event dropped: the object's Event budget is spent");
            return;
        }
        let event = events::build(
            &self.reporter,
            &obj.object_ref(&()),
            warning,
            reason,
            &note,
            k8s_openapi::jiff::Timestamp::now(),
        );
        if let Err(e) = events::publish(&self.client, &event).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}

/// Writes `status` by server-side apply with the operator's field manager.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reconciles_wait_until_both_caches_hold_a_complete_listing() {
        let sync = Arc::new(CacheSync::new(&[Cache::Settings, Cache::Identities]));
        let waiting = tokio::spawn({
            let sync = sync.clone();
            async move { sync.wait().await }
        });
        sync.observe::<EmailSettings>(Cache::Settings, &watcher::Event::Init);
        sync.observe::<SenderIdentity>(Cache::Identities, &watcher::Event::InitDone);
        tokio::task::yield_now().await;
        assert!(!sync.synced(), "the EmailSettings listing is not complete");
        assert!(!waiting.is_finished());
        sync.observe::<EmailSettings>(Cache::Settings, &watcher::Event::InitDone);
        waiting.await.expect("woken once both are complete");
        assert!(sync.synced());
        // A later re-list swaps a whole listing in at its end: the caches stay usable meanwhile.
        sync.observe::<EmailSettings>(Cache::Settings, &watcher::Event::Init);
        assert!(sync.synced());
    }

    #[test]
    fn a_written_status_is_forgotten_once_the_watch_shows_it() {
        use crate::crd::sender_identity::SenderIdentityStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let memory = Memory::default();
        let written = SenderIdentityStatus {
            verification_status: Some("Pending".into()),
            // Nanoseconds here; the API server keeps seconds.
            last_checked_time: Some(Time(
                k8s_openapi::jiff::Timestamp::new(1_700_000_000, 123_456_789).expect("time"),
            )),
            ..Default::default()
        };
        let v = serde_json::to_string(&written).expect("json");
        memory.written.set("u1", v);
        let older = SenderIdentityStatus::default();
        let shown: SenderIdentityStatus =
            serde_json::from_str(&serde_json::to_string(&written).expect("json")).expect("back");
        memory.cache_shows("u1", Some(&older));
        assert_eq!(memory.written.len(), 1, "the cache is behind: kept");
        memory.cache_shows("u1", Some(&shown));
        assert!(memory.written.is_empty(), "caught up: dropped");
    }
}
