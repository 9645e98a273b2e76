//! `email-operator run`: the controllers, their shared context and the watch wiring.
//!
//! Each kind's reconcile is a pipeline (dereference → policy → SES apply → status) in its own
//! module; this module owns what they share: the Kubernetes client and caches, SES clients per
//! account and region, DNS lookups, the clock, Events, and status writes by server-side apply.

pub mod email_settings;
pub mod events;
pub mod index;
pub mod leader;
pub mod recheck;
pub mod secrets;
pub mod sender_identity;
pub mod triggers;

use crate::clock::Clock;
use crate::crd::{EmailSettings, SenderIdentity};
use crate::dns::lookup::HickoryLookup;
use crate::ses::aws::AwsSes;
use crate::ses::limiter::RateLimiter;
use events::Reporter;
use index::NamespaceIndex;
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "email-operator";
/// The finalizer on SenderIdentities (SES cleanup).
pub const FINALIZER: &str = "email.ops.dev/ses-identity";
/// Annotation: adopt an existing SES identity that is not tagged as ours.
pub const ADOPT_ANNOTATION: &str = "email.ops.dev/adopt";
/// Annotation: retry a Failed verification when its value changes.
pub const RETRY_ANNOTATION: &str = "email.ops.dev/retry";

/// Operator-wide settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names this cluster in SES ownership tags.
    pub cluster_id: String,
    /// Client-side SES request rate per account and region.
    pub ses_max_rps: f64,
    /// Reconciles each controller runs at once.
    pub concurrency: u16,
    /// The AWS account of identity ARNs, when STS should not be asked.
    pub aws_account_id: Option<String>,
    pub windows: sender_identity::step::Windows,
    /// The Secret (namespace, name) holding the operator-wide default relay.
    pub default_relay: Option<(String, String)>,
    /// Where AdvancedSmtp connection tests go.
    pub ses_endpoint: crate::smtp::target::SesEndpoint,
    /// Bounds on each connection test.
    pub smtp_timeouts: crate::smtp::Timeouts,
    /// Benchmarks only: behave like a per-resource-polling controller, reading every
    /// SenderIdentity's SES identity on this period (no bulk re-check).
    pub baseline_poll: Option<std::time::Duration>,
}

/// Where an SES identity lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SesKey {
    pub region: String,
    pub role_arn: Option<String>,
}

/// What the controllers share.
pub struct Context {
    pub client: Client,
    /// Who publishes Events.
    reporter: Reporter,
    pub settings: Store<EmailSettings>,
    /// Every SenderIdentity, malformed ones included (as errors), so one bad object cannot stall
    /// the rest.
    pub identities: Store<DeserializeGuard<SenderIdentity>>,
    /// The names in each namespace of `settings` and of `identities`.
    pub settings_index: NamespaceIndex,
    pub identities_index: NamespaceIndex,
    /// Whether both caches hold a complete first listing.
    pub caches: Arc<CacheSync>,
    /// The Secrets the EmailSettings controller read, while current.
    pub secrets: Arc<secrets::SecretCache>,
    pub dns: HickoryLookup,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    /// SMTP connection tests.
    pub prober: crate::smtp::LettreProber,
    /// OAuth2 tokens for XOAUTH2 tests, cached until shortly before expiry.
    pub tokens: crate::smtp::oauth2::TokenSource,
    /// The last connection test of each EmailSettings (by uid).
    tests: Mutex<HashMap<String, email_settings::decide::Memo>>,
    /// The status this process last wrote to each object (by uid). Only the operator writes
    /// status, so it is the truth for the next reconcile, which may still see an older copy in
    /// the cache: without it a reconcile racing its own write would redo the write and repeat
    /// its Events.
    written: Mutex<HashMap<String, String>>,
    ses: tokio::sync::Mutex<HashMap<SesKey, AwsSes>>,
    /// One limiter per AWS account and region, shared by every client of that account (SES's
    /// 1 request a second is the account's, whichever role calls).
    limiters: Mutex<HashMap<(String, String), Arc<RateLimiter>>>,
    /// Identities whose listed SES status changed since they were last read.
    dirty: Mutex<HashSet<(SesKey, String)>>,
    /// When each SenderIdentity (by uid) was last read from SES, including reads whose result
    /// was not written to its status (see [`STATUS_HEARTBEAT`]).
    checked: Mutex<HashMap<String, k8s_openapi::jiff::Timestamp>>,
}

/// Whether each cache holds a complete first listing. Until both do, no reconcile decides
/// anything: a SenderIdentity whose EmailSettings is not cached yet would be rejected as
/// `EmailSettingsNotFound` (and nothing would wake it again), a sibling not cached yet would be
/// missed by the conflict rules, and an EmailSettings would count too few users.
#[derive(Debug, Default)]
pub struct CacheSync {
    settings: std::sync::atomic::AtomicBool,
    identities: std::sync::atomic::AtomicBool,
}

/// How long a reconcile that came before the caches synced waits before it runs again.
pub const UNSYNCED_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl CacheSync {
    pub fn synced(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.settings.load(Ordering::Acquire) && self.identities.load(Ordering::Acquire)
    }

    /// Marks one cache synced at its watch's first InitDone (seen after the cache applied it),
    /// and the operator ready once both are.
    fn observer<K>(
        self: Arc<Self>,
        settings: bool,
    ) -> impl FnMut(&Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>) {
        use std::sync::atomic::Ordering;
        move |event| {
            if matches!(event, Ok(kube::runtime::watcher::Event::InitDone)) {
                let flag = if settings {
                    &self.settings
                } else {
                    &self.identities
                };
                if !flag.swap(true, Ordering::AcqRel) && self.synced() {
                    crate::metrics::READY.store(true, Ordering::Relaxed);
                    tracing::info!("caches synced: ready");
                }
            }
        }
    }
}

/// `lastCheckedTime` alone is written at most this often: a poll that changes nothing else
/// does not cost a status write (and a watch event for every watcher).
pub const STATUS_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(300);

impl Context {
    pub fn new(
        client: Client,
        settings: Store<EmailSettings>,
        identities: Store<DeserializeGuard<SenderIdentity>>,
        dns: HickoryLookup,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self, String> {
        let reporter = Reporter {
            controller: "email-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Ok(Self {
            reporter,
            client,
            settings,
            identities,
            settings_index: NamespaceIndex::default(),
            identities_index: NamespaceIndex::default(),
            caches: Arc::default(),
            secrets: Arc::default(),
            dns,
            clock,
            prober: crate::smtp::LettreProber::new(config.smtp_timeouts),
            tokens: crate::smtp::oauth2::TokenSource::new(config.smtp_timeouts.conversation)?,
            config,
            tests: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            ses: tokio::sync::Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            checked: Mutex::new(HashMap::new()),
        })
    }

    /// The last connection test of an EmailSettings run by this process.
    pub fn last_test(&self, uid: &str) -> Option<email_settings::decide::Memo> {
        self.tests.lock().ok()?.get(uid).cloned()
    }

    pub fn record_test(&self, uid: &str, memo: email_settings::decide::Memo) {
        if let Ok(mut t) = self.tests.lock() {
            t.insert(uid.to_string(), memo);
        }
    }

    /// The status to reconcile from: the one this process last wrote, else the cached one.
    pub fn prior_status<S>(&self, uid: &str, cached: Option<&S>) -> S
    where
        S: Clone + Default + serde::de::DeserializeOwned,
    {
        self.written
            .lock()
            .ok()
            .and_then(|w| serde_json::from_str(w.get(uid)?).ok())
            .or_else(|| cached.cloned())
            .unwrap_or_default()
    }

    /// Records a status this process wrote.
    pub fn wrote_status<S: Serialize>(&self, uid: &str, status: &S) {
        // Kept as compact JSON: a parsed value costs several times the memory, per object.
        if let (Ok(mut w), Ok(v)) = (self.written.lock(), serde_json::to_string(status)) {
            w.insert(uid.to_string(), v);
        }
    }

    /// Forgets an object (deleted).
    pub fn forget_status(&self, uid: &str) {
        if let Ok(mut w) = self.written.lock() {
            w.remove(uid);
        }
    }

    pub fn forget_test(&self, uid: &str) {
        if let Ok(mut t) = self.tests.lock() {
            t.remove(uid);
        }
    }

    /// The well-formed SenderIdentities of one namespace (only those are copied).
    pub fn identities_in(&self, namespace: &str) -> Vec<SenderIdentity> {
        valid_in(&self.identities, &self.identities_index, namespace)
    }

    /// The EmailSettings of one namespace.
    pub fn settings_in(&self, namespace: &str) -> Vec<Arc<EmailSettings>> {
        self.settings_index.objects(&self.settings, namespace)
    }

    /// When the object was last read from SES, as far as this process knows.
    pub fn last_checked(&self, uid: &str) -> Option<k8s_openapi::jiff::Timestamp> {
        self.checked.lock().ok()?.get(uid).copied()
    }

    pub fn set_checked(&self, uid: &str, at: Option<k8s_openapi::jiff::Timestamp>) {
        if let Ok(mut c) = self.checked.lock() {
            match at {
                Some(t) => c.insert(uid.to_string(), t),
                None => c.remove(uid),
            };
        }
    }

    /// The SES client of an account/role and region, built once and reused (with its limiter).
    pub async fn ses(&self, key: &SesKey) -> AwsSes {
        let mut clients = self.ses.lock().await;
        if let Some(c) = clients.get(key) {
            return c.clone();
        }
        let limiter = self.limiter(key);
        let client = AwsSes::new(
            &key.region,
            key.role_arn.as_deref(),
            self.config.aws_account_id.as_deref(),
            limiter,
        )
        .await;
        clients.insert(key.clone(), client.clone());
        client
    }

    /// The rate limiter of the account and region `key` calls SES in: the role's account, or
    /// the operator's own (named by `--aws-account-id`, else taken as one account).
    fn limiter(&self, key: &SesKey) -> Arc<RateLimiter> {
        let account = key
            .role_arn
            .as_deref()
            .and_then(crate::ses::aws::account_of_role)
            .or_else(|| self.config.aws_account_id.clone())
            .unwrap_or_default();
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        limiters
            .entry((account, key.region.clone()))
            .or_insert_with(|| Arc::new(RateLimiter::new(self.config.ses_max_rps)))
            .clone()
    }

    pub fn mark_dirty(&self, key: &SesKey, identity: &str) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert((key.clone(), crate::ses::identity_key(identity)));
        }
    }

    /// Takes the dirty mark of an identity (true if it was set).
    pub fn take_dirty(&self, key: &SesKey, identity: &str) -> bool {
        self.dirty
            .lock()
            .map(|mut d| d.remove(&(key.clone(), crate::ses::identity_key(identity))))
            .unwrap_or(false)
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

/// Runs the controllers until the process is told to stop.
pub async fn run(
    client: Client,
    config: Config,
    dns: HickoryLookup,
    clock: Arc<dyn Clock>,
    recheck_interval: std::time::Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    use futures::StreamExt;
    use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};

    let si_api: Api<DeserializeGuard<SenderIdentity>> = Api::all(client.clone());
    let es_api: Api<EmailSettings> = Api::all(client.clone());
    let (es_reader, es_writer) = reflector::store();
    // The SenderIdentity cache is ours too (not the controller's built-in one), driven by the
    // controller's trigger stream, so its readiness is observable for /readyz.
    let (si_store, si_writer) = reflector::store();
    let ctx = Arc::new(Context::new(
        client,
        es_reader.clone(),
        si_store.clone(),
        dns,
        clock,
        config,
    )?);
    // Readiness is taken from the watch streams themselves (their first InitDone, once the
    // cache has applied it): several waiters on one Store's wait_until_ready() are not all woken.
    let caches = ctx.caches.clone();
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded();
    // SenderIdentities are woken from the watch that fills the EmailSettings cache when their
    // EmailSettings appears, changes or goes away (see `triggers`).
    let mut settings_triggers = triggers::SettingsTriggers::new(
        si_store.clone(),
        ctx.identities_index.clone(),
        trigger_tx.clone(),
    );
    let es_stream = watcher(es_api, watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields)
        .inspect(ctx.settings_index.feed())
        .reflect(es_writer)
        .inspect(caches.clone().observer(true))
        .inspect(move |event| {
            if let Ok(event) = event {
                settings_triggers.observe(event);
            }
        })
        .applied_objects();

    // Siblings and EmailSettings are woken from this one watch (see `triggers`).
    let (es_trigger_tx, es_trigger_rx) = futures::channel::mpsc::unbounded();
    let mut triggers = triggers::Triggers::new(
        si_store.clone(),
        ctx.identities_index.clone(),
        trigger_tx.clone(),
        es_trigger_tx,
    );
    let si_stream = watcher(si_api, watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields)
        .inspect(ctx.identities_index.feed())
        .reflect(si_writer)
        .inspect(caches.clone().observer(false))
        .inspect(move |event| {
            if let Ok(event) = event {
                triggers.observe(event);
            }
        })
        .applied_objects();
    let controller = Controller::for_stream(si_stream, si_store.clone())
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency));
    let gauges = si_store.clone();
    crate::metrics::on_scrape(move || refresh_gauges(&gauges));
    if ctx.config.baseline_poll.is_none() {
        let cadence = recheck::Cadence {
            verified_every: recheck_interval,
            pending_every: ctx.config.windows.pending_min,
        };
        tokio::spawn(recheck::run(ctx.clone(), cadence, trigger_tx));
    }

    // EmailSettings: re-tested when a Secret they read or publish changes (metadata is enough
    // to notice a change), and re-evaluated when their SenderIdentities change (`triggers`).
    let by_secret = ctx.clone();
    let relay = ctx.config.default_relay.clone();
    let secret_events = watcher(
        Api::<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>::all(
            ctx.client.clone(),
        ),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect(ctx.secrets.feed())
    .touched_objects();
    let es_controller = Controller::for_stream(es_stream, es_reader)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .watches_stream(secret_events, move |secret| {
            let ns = secret.metadata.namespace.as_deref();
            let name = secret.name_any();
            // Only the default relay concerns other namespaces.
            let candidates = if email_settings::is_default_relay(ns, &name, relay.as_ref()) {
                by_secret.settings.state()
            } else {
                by_secret.settings_in(ns.unwrap_or_default())
            };
            email_settings::settings_for_secret(
                ns,
                &name,
                secret.owner_references(),
                relay.as_ref(),
                &candidates,
            )
        })
        .reconcile_on(es_trigger_rx)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            email_settings::reconcile,
            email_settings::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        });

    // Owned DNSEndpoints are watched when external-dns's CRD is installed (an edit or deletion
    // of one is put right); without the CRD there is nothing to watch.
    let endpoints = sender_identity::dns_endpoint::api_resource();
    let endpoint_api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &endpoints);
    let controller = match endpoint_api
        .list(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => controller.owns_with(endpoint_api, endpoints, watcher::Config::default()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            tracing::info!(
                "the DNSEndpoint CRD (external-dns) is not installed: dns.provider ExternalDNS cannot be served"
            );
            controller
        }
        Err(e) => {
            // Not "not installed": most likely RBAC (the chart grants DNSEndpoints only with
            // externalDns.enabled). Say so rather than pretend the CRD is missing.
            tracing::warn!(
                error = %e,
                "cannot list DNSEndpoints: dns.provider ExternalDNS cannot be served (with the Helm chart, set externalDns.enabled)"
            );
            controller
        }
    };
    let si_controller = controller
        .reconcile_on(trigger_rx)
        .graceful_shutdown_on(stopped(stop))
        .run(
            sender_identity::reconcile,
            sender_identity::error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        });
    futures::join!(si_controller, es_controller);
    Ok(())
}

/// The cached copies drop `managedFields`: nothing here reads them, and they are a large part
/// of every object the API server sends (one entry per field manager).
fn strip_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Resolves once `stop` turns true: the controllers take no new work and finish what runs.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Copies of the well-formed objects of one namespace of a guarded cache, found through its
/// index: a reconcile costs what its namespace holds, not the cluster.
pub fn valid_in<K: Clone>(
    store: &Store<DeserializeGuard<K>>,
    index: &NamespaceIndex,
    namespace: &str,
) -> Vec<K>
where
    DeserializeGuard<K>: Resource<DynamicType = ()> + Clone,
{
    index
        .objects(store, namespace)
        .iter()
        .filter_map(|g| g.0.as_ref().ok().cloned())
        .collect()
}

/// The cache key of a SenderIdentity in the guarded cache.
pub fn guard_ref(
    si: &SenderIdentity,
) -> kube::runtime::reflector::ObjectRef<DeserializeGuard<SenderIdentity>> {
    kube::runtime::reflector::ObjectRef::new(&si.name_any())
        .within(&si.namespace().unwrap_or_default())
}

/// `email_operator_sender_identities{status}` from the cache, at scrape time.
fn refresh_gauges(identities: &Store<DeserializeGuard<SenderIdentity>>) {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for si in identities.state().iter().filter_map(|g| g.0.as_ref().ok()) {
        let status = si
            .status
            .as_ref()
            .and_then(|s| s.verification_status.clone())
            .unwrap_or_else(|| "Unknown".into());
        *counts.entry(status).or_default() += 1;
    }
    let family = &crate::metrics::METRICS.identities;
    family.clear();
    for (status, n) in counts {
        family
            .get_or_create(&crate::metrics::VerificationLabels { status })
            .set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event as WatchEvent;

    #[test]
    fn reconciles_wait_until_both_caches_hold_a_complete_listing() {
        let caches = Arc::new(CacheSync::default());
        let mut settings = caches.clone().observer::<EmailSettings>(true);
        let mut identities = caches.clone().observer::<SenderIdentity>(false);
        settings(&Ok(WatchEvent::Init));
        identities(&Ok(WatchEvent::Init));
        identities(&Ok(WatchEvent::InitDone));
        assert!(
            !caches.synced(),
            "the EmailSettings listing is not complete"
        );
        settings(&Ok(WatchEvent::Init));
        assert!(!caches.synced());
        settings(&Ok(WatchEvent::InitDone));
        assert!(caches.synced());
        // A later re-list swaps a whole listing in at its end: the caches stay usable meanwhile.
        settings(&Ok(WatchEvent::Init));
        assert!(caches.synced());
    }
}
