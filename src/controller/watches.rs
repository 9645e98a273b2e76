//! Every watch, and what each event wakes — in one place. See ARCHITECTURE.md for the picture.
//!
//! | watch | fills | wakes |
//! |---|---|---|
//! | EmailSettings | the EmailSettings cache | the EmailSettings; its SenderIdentities when its spec, existence or published generation changed ([`SettingsTriggers`]) |
//! | SenderIdentity | the SenderIdentity cache | the SenderIdentity; its siblings when the policy's view of it changed, its EmailSettings when what that reads changed ([`Triggers`]) |
//! | EmailSettings, SenderIdentity | the claim index (who claims which domain) | other namespaces' objects claiming an overlapping domain, when a claim may have changed ([`ClaimTriggers`]) |
//! | SenderPolicy (policy namespace) | the policy cache | everyone, on any change after the first listing |
//! | Namespace (metadata; cluster-wide installs) | the namespace cache (labels) | everyone, when labels change and a policy selects by label |
//! | Secret (metadata) | the [`SecretCache`](super::secrets::SecretCache) versions | the EmailSettings that read, own, or (default relay) use the Secret |
//! | DNSEndpoint (owned) | — | its SenderIdentity (an edit or deletion is put right) |
//! | the bulk re-check ([`recheck`]) | — | SenderIdentities whose listed SES status changed |
//!
//! Every watch covers the whole cluster, or one watch per `--watch-namespace` merged into one
//! stream ([`scope`]). The order of what each cache-filling event reaches is fixed by
//! [`cached`], not by the order of calls at the call site: the indexes (namespace, claims), then
//! the cache, then its sync flag, then the triggers and the per-object memory — so a woken object always reads a cache that already
//! holds the event that woke it (a second watch of the same objects could deliver first, and a
//! SenderIdentity reading a cache without its new EmailSettings would be rejected with nothing
//! to wake it again).

use super::backends::Backends;
use super::config::Config;
use super::context::{Cache, Caches, Context};
use super::packed::{Packable, Packed, cache_ref};
use super::recheck;
use super::scope::{self, Scope};
use super::tenancy::{ClaimTriggers, wake_everyone};
use super::triggers::{SettingsTriggers, Triggers};
use super::{email_settings, sender_identity};
use crate::clock::Clock;
use crate::crd::{EmailSettings, SenderIdentity, SenderPolicy};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Arc;

/// A watch that fills a cache of packed objects ([`Packed`]), each event reaching, in this
/// order: the indexes (`index`), the cache, its sync flag, then `then` (triggers, memory).
/// Everything but the cache sees the whole object the watch delivered.
fn cached<K, C, B>(
    watch: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    mut index: impl FnMut(&watcher::Event<K>) + Send + 'static,
    pack: fn(&K) -> Packed<C>,
    mut writer: Writer<Packed<C>>,
    ctx: Arc<Context<B>>,
    cache: Cache,
    mut then: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + std::fmt::Debug + 'static,
    C: Packable,
    B: Backends,
{
    watch
        .inspect(move |event| {
            if let Ok(event) = event {
                index(event);
                writer.apply_watcher_event(&packed_event(event, pack));
            }
        })
        .inspect(move |event| {
            if let Ok(event) = event {
                ctx.caches.sync.observe(cache, event);
                then(event);
            }
        })
        .applied_objects()
}

/// The same event with its object packed for a cache.
fn packed_event<K, C: Packable>(
    event: &watcher::Event<K>,
    pack: fn(&K) -> Packed<C>,
) -> watcher::Event<Packed<C>> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(pack(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(pack(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(pack(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Forgets what this process learned of an object once its watch reports it deleted.
fn forget_deleted<K: Resource, B: Backends>(ctx: &Context<B>, event: &watcher::Event<K>) {
    if let watcher::Event::Delete(obj) = event
        && let Some(uid) = obj.meta().uid.as_deref()
    {
        ctx.forget(uid);
    }
}

/// Lets go of the copy of a status this process wrote once the watch shows it.
fn settle_written<K: Resource, S: serde::Serialize, B: Backends>(
    ctx: &Context<B>,
    event: &watcher::Event<K>,
    status: impl Fn(&K) -> Option<&S>,
) {
    if let watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) = event
        && let Some(uid) = obj.meta().uid.as_deref()
    {
        ctx.cache_shows(uid, status(obj));
    }
}

/// A channel that wakes a controller for one object, besides its own watch.
type Wake<K> = futures::channel::mpsc::UnboundedSender<ObjectRef<K>>;

/// Runs the controllers until `stop` turns true.
pub async fn run<B: Backends>(
    client: Client,
    config: Config,
    backends: B,
    clock: Arc<dyn Clock>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let scope = Scope::of(&config.watch_namespaces);
    let (es_reader, es_writer) = reflector::store();
    let (si_reader, si_writer) = reflector::store();
    let (policy_reader, policy_writer) = reflector::store();
    let mut caches = Caches::new(es_reader.clone(), si_reader.clone()).with_policies(policy_reader);
    // Namespaces' labels (for policies' selectors) are read only by a cluster-wide install.
    let namespaces =
        (scope == Scope::Cluster).then(reflector::store::<PartialObjectMeta<Namespace>>);
    if let Some((reader, _)) = &namespaces {
        caches = caches.with_namespaces(reader.clone());
    }
    let ctx = Arc::new(Context::new(
        client.clone(),
        caches,
        backends,
        clock,
        config,
    ));
    let (si_wake, si_wake_rx) = futures::channel::mpsc::unbounded();
    let (es_wake, es_wake_rx) = futures::channel::mpsc::unbounded();
    let es_stream = settings_stream(&ctx, &scope, es_writer, si_wake.clone(), es_wake.clone());
    let si_stream = identities_stream(&ctx, &scope, si_writer, si_wake.clone(), es_wake.clone());
    tokio::spawn(policies(
        ctx.clone(),
        policy_writer,
        si_wake.clone(),
        es_wake.clone(),
    ));
    if let Some((_, writer)) = namespaces {
        tokio::spawn(namespace_labels(
            ctx.clone(),
            writer,
            si_wake.clone(),
            es_wake.clone(),
        ));
    }

    let (identities, settings, clock) = (si_reader.clone(), es_reader.clone(), ctx.clock.clone());
    crate::metrics::on_scrape(move || {
        let identities: Vec<_> = identities.state().iter().filter_map(|p| p.get()).collect();
        let settings: Vec<_> = settings.state().iter().filter_map(|p| p.get()).collect();
        super::gauges::refresh(&identities, &settings, clock.now());
    });
    tokio::spawn(recheck::run(ctx.clone(), si_wake.clone()));

    let es_watch = wake_plainly(es_stream, es_wake.clone(), stopped(stop.clone()));
    let es_controller = Controller::for_stream(futures::stream::pending(), es_reader)
        .with_config(
            controller::Config::default()
                .concurrency(ctx.config.concurrency)
                .debounce(SETTINGS_DEBOUNCE),
        )
        .watches_stream(secret_events(&ctx, &scope), secret_mapper(ctx.clone()))
        .reconcile_on(es_wake_rx)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            email_settings::reconcile,
            email_settings::error_policy,
            ctx.clone(),
        )
        .for_each(log_error);
    // The watch wakes each SenderIdentity through the wake channel, by namespace and name
    // only (as it does each EmailSettings): fed the stream itself, kube would queue each
    // identity with its uid and resourceVersion, held twice (its timer and its index) while
    // the identity waits for its next check — ten thousand waiting identities held 1.6 MiB of
    // those for nothing, as the reconcile reads the object from the cache.
    let si_watch = wake_plainly(si_stream, si_wake.clone(), stopped(stop.clone()));
    let si_controller = with_dns_endpoints(
        Controller::for_stream(futures::stream::pending(), si_reader)
            .with_config(controller::Config::default().concurrency(ctx.config.concurrency)),
        &client,
        &scope,
    )
    .await
    .reconcile_on(si_wake_rx)
    .graceful_shutdown_on(stopped(stop))
    .run(
        sender_identity::reconcile,
        sender_identity::error_policy,
        ctx,
    )
    .for_each(log_error);
    futures::join!(si_watch, es_watch, si_controller, es_controller);
}

/// Drives a watch that fills a cache (and its triggers) and wakes each object it shows, by
/// namespace and name, until `stop` resolves.
async fn wake_plainly<K: Resource<DynamicType = ()>, C: Packable>(
    events: impl Stream<Item = Result<K, watcher::Error>>,
    wake: Wake<Packed<C>>,
    stop: impl std::future::Future<Output = ()>,
) {
    events
        .take_until(stop)
        .for_each(|event| {
            match event {
                Ok(obj) => {
                    let _ = wake.unbounded_send(cache_ref(&obj));
                }
                Err(e) => tracing::debug!(kind = %K::kind(&()), error = %e, "watch error"),
            }
            futures::future::ready(())
        })
        .await;
}

/// An EmailSettings is reconciled this long after the last of a burst of changes (kube's
/// trailing-edge debounce): it follows its SenderIdentities' usage and coverage, and when
/// several of them change within this time (a listing that finds them verified together, a
/// roll-out creating them) one reconcile writes the status once instead of once per change.
const SETTINGS_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// The EmailSettings watch: fills its cache, then wakes the SenderIdentities an event
/// concerns, and other namespaces' claimers of the domains it claims.
fn settings_stream<B: Backends>(
    ctx: &Arc<Context<B>>,
    scope: &Scope,
    writer: Writer<Packed<EmailSettings>>,
    si_wake: Wake<Packed<SenderIdentity>>,
    es_wake: Wake<Packed<EmailSettings>>,
) -> impl Stream<Item = Result<EmailSettings, watcher::Error>> + Send + use<B> {
    let caches = &ctx.caches;
    let mut triggers = SettingsTriggers::new(
        caches.identities.clone(),
        caches.identities_index.clone(),
        si_wake.clone(),
    );
    let mut claims = claim_triggers(ctx, si_wake, es_wake);
    let (index, claim_index) = (caches.settings_index.clone(), caches.claims.clone());
    let memory = ctx.clone();
    cached(
        scope::watch(scope.apis(&ctx.client), watcher::Config::default()),
        move |event| {
            index.observe(event);
            claim_index.observe_settings(event);
        },
        Packed::pack,
        writer,
        ctx.clone(),
        Cache::Settings,
        move |event| {
            triggers.observe(event);
            claims.observe_settings(event);
            forget_deleted(&memory, event);
            settle_written(&memory, event, |es: &EmailSettings| es.status.as_ref());
        },
    )
}

/// The SenderIdentity watch: fills its cache, then wakes the siblings and the EmailSettings an
/// event concerns, and other namespaces' claimers of the domains it claims.
fn identities_stream<B: Backends>(
    ctx: &Arc<Context<B>>,
    scope: &Scope,
    writer: Writer<Packed<SenderIdentity>>,
    si_wake: Wake<Packed<SenderIdentity>>,
    es_wake: Wake<Packed<EmailSettings>>,
) -> impl Stream<Item = Result<DeserializeGuard<SenderIdentity>, watcher::Error>> + Send + use<B> {
    let caches = &ctx.caches;
    let mut triggers = Triggers::new(
        caches.identities.clone(),
        caches.identities_index.clone(),
        si_wake.clone(),
        es_wake.clone(),
    );
    let mut claims = claim_triggers(ctx, si_wake, es_wake);
    let (index, claim_index) = (caches.identities_index.clone(), caches.claims.clone());
    let memory = ctx.clone();
    cached(
        scope::watch(scope.apis(&ctx.client), watcher::Config::default()),
        move |event| {
            index.observe(event);
            claim_index.observe_identities(event);
        },
        Packed::pack_guard,
        writer,
        ctx.clone(),
        Cache::Identities,
        move |event| {
            triggers.observe(event);
            claims.observe_identity(event);
            forget_deleted(&memory, event);
            settle_written(&memory, event, |g: &DeserializeGuard<SenderIdentity>| {
                g.0.as_ref().ok().and_then(|si| si.status.as_ref())
            });
        },
    )
}

fn claim_triggers<B: Backends>(
    ctx: &Context<B>,
    si_wake: Wake<Packed<SenderIdentity>>,
    es_wake: Wake<Packed<EmailSettings>>,
) -> ClaimTriggers {
    ClaimTriggers::new(
        ctx.caches.identities.clone(),
        ctx.caches.identities_index.clone(),
        ctx.caches.claims.clone(),
        si_wake,
        es_wake,
    )
}

/// The SenderPolicies of the policy namespace: any change may change any claim's verdict, so
/// everyone is woken (after the first listing, when everyone is reconciled anyway).
async fn policies<B: Backends>(
    ctx: Arc<Context<B>>,
    writer: Writer<SenderPolicy>,
    si_wake: Wake<Packed<SenderIdentity>>,
    es_wake: Wake<Packed<EmailSettings>>,
) {
    let api: Api<SenderPolicy> =
        Api::namespaced(ctx.client.clone(), &ctx.config.tenancy.policy_namespace);
    follow(
        ctx,
        scope::watch(vec![api], watcher::Config::default()),
        writer,
        Cache::Policies,
        si_wake,
        es_wake,
        |_| true,
    )
    .await;
}

/// Namespaces' labels (a cluster-wide install): a change wakes everyone when a policy selects
/// namespaces by label.
async fn namespace_labels<B: Backends>(
    ctx: Arc<Context<B>>,
    writer: Writer<PartialObjectMeta<Namespace>>,
    si_wake: Wake<Packed<SenderIdentity>>,
    es_wake: Wake<Packed<EmailSettings>>,
) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(ctx.client.clone());
    let selecting = ctx.clone();
    // Each namespace's labels as a hash: the cache holds the labels themselves.
    let mut labels: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let changed = move |event: &watcher::Event<PartialObjectMeta<Namespace>>| {
        let (watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) = event else {
            if let watcher::Event::Delete(ns) = event {
                labels.remove(&ns.name_any());
            }
            return false;
        };
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            ns.metadata.labels.hash(&mut h);
            h.finish()
        };
        let before = labels.insert(ns.name_any(), hash);
        matches!(event, watcher::Event::Apply(_))
            && before != Some(hash)
            && selecting
                .caches
                .policies
                .state()
                .iter()
                .any(|p| p.spec.namespace_selector.is_some())
    };
    follow(
        ctx,
        scope::watch(vec![api], watcher::Config::default()),
        writer,
        Cache::Namespaces,
        si_wake,
        es_wake,
        changed,
    )
    .await;
}

/// Fills a cache from `events` and wakes everyone after an event `wakes` (past the first
/// listing).
async fn follow<B, K>(
    ctx: Arc<Context<B>>,
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    writer: Writer<K>,
    cache: Cache,
    si_wake: Wake<Packed<SenderIdentity>>,
    es_wake: Wake<Packed<EmailSettings>>,
    mut wakes: impl FnMut(&watcher::Event<K>) -> bool,
) where
    B: Backends,
    K: Resource<DynamicType = ()> + Clone + Send + Sync + std::fmt::Debug + 'static,
{
    let synced = |ctx: &Context<B>| ctx.caches.sync.synced();
    events
        .reflect(writer)
        .for_each(|event| {
            if let Ok(event) = &event {
                let was_synced = synced(&ctx);
                ctx.caches.sync.observe(cache, event);
                let change = matches!(event, watcher::Event::Apply(_) | watcher::Event::Delete(_))
                    || (was_synced && matches!(event, watcher::Event::InitDone));
                if wakes(event) && change && was_synced {
                    wake_everyone(
                        &ctx.caches.identities,
                        &ctx.caches.settings,
                        &si_wake,
                        &es_wake,
                    );
                }
            }
            futures::future::ready(())
        })
        .await;
}

async fn log_error<T, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "reconcile error");
    }
}

/// Secrets are watched by metadata only (enough to notice a change) and feed the Secret cache's
/// versions. A namespaced install also watches the default relay's Secret, by name, when its
/// namespace is not among the watched ones.
fn secret_events<B: Backends>(
    ctx: &Arc<Context<B>>,
    scope: &Scope,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    let mut apis: Vec<(Api<PartialObjectMeta<Secret>>, watcher::Config)> = scope
        .apis(&ctx.client)
        .into_iter()
        .map(|api| (api, watcher::Config::default()))
        .collect();
    if let (Scope::Namespaces(watched), Some((ns, name))) = (scope, &ctx.config.smtp.default_relay)
        && !watched.contains(ns)
    {
        apis.push((
            Api::namespaced(ctx.client.clone(), ns),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ));
    }
    scope::watch_each(apis)
        .inspect(ctx.secrets.feed())
        .touched_objects()
}

/// A Secret concerns the EmailSettings that read, publish or (the default relay) use it; only
/// the default relay concerns other namespaces.
fn secret_mapper<B: Backends>(
    ctx: Arc<Context<B>>,
) -> impl Fn(
    PartialObjectMeta<k8s_openapi::api::core::v1::Secret>,
) -> Vec<ObjectRef<Packed<EmailSettings>>>
+ Send
+ Sync
+ 'static {
    move |secret| {
        let ns = secret.metadata.namespace.as_deref();
        let name = secret.name_any();
        // A namespace's own relay credential, named by a policy: every default-relay user.
        let relay_credential = ns == Some(ctx.config.tenancy.policy_namespace.as_str())
            && ctx.caches.policies.state().iter().any(|p| {
                p.spec
                    .relay_credentials_secret_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            });
        if relay_credential {
            return ctx
                .caches
                .settings
                .state()
                .iter()
                .filter_map(|p| p.get())
                .filter(|es| es.spec.delivery == crate::crd::email_settings::Delivery::Default)
                .map(|es| cache_ref(&es))
                .collect();
        }
        let relay = ctx.config.smtp.default_relay.as_ref();
        let candidates = if email_settings::is_default_relay(ns, &name, relay) {
            ctx.caches
                .settings
                .state()
                .iter()
                .filter_map(|p| p.get().map(Arc::new))
                .collect()
        } else {
            ctx.settings_in(ns.unwrap_or_default())
        };
        email_settings::settings_for_secret(
            ns,
            &name,
            secret.owner_references(),
            relay,
            &candidates,
        )
    }
}

/// Owned DNSEndpoints are watched when external-dns's CRD is installed and readable (an edit or
/// deletion of one is put right); otherwise there is nothing to watch, and a SenderIdentity
/// asking for one says why in its `DnsEndpointReady` condition.
async fn with_dns_endpoints(
    controller: Controller<Packed<SenderIdentity>>,
    client: &Client,
    scope: &Scope,
) -> Controller<Packed<SenderIdentity>> {
    let endpoints = sender_identity::dns_endpoint::api_resource();
    let apis: Vec<Api<kube::api::DynamicObject>> = match scope {
        Scope::Cluster => vec![Api::all_with(client.clone(), &endpoints)],
        Scope::Namespaces(ns) => ns
            .iter()
            .map(|n| Api::namespaced_with(client.clone(), n, &endpoints))
            .collect(),
    };
    let probe = match apis.first() {
        Some(api) => api.list(&kube::api::ListParams::default().limit(1)).await,
        None => return controller,
    };
    match probe {
        Ok(_) => {
            let events = scope::watch_each(
                apis.into_iter()
                    .map(|a| (a, watcher::Config::default()))
                    .collect(),
            );
            controller.owns_stream_with(events.touched_objects(), endpoints)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            tracing::info!(
                "the DNSEndpoint CRD (external-dns) is not installed: dns.provider ExternalDNS cannot be served"
            );
            controller
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot list DNSEndpoints: dns.provider ExternalDNS cannot be served (with the Helm chart, set externalDns.enabled)"
            );
            controller
        }
    }
}

/// Resolves once `stop` turns true: the controllers take no new work and finish what runs.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The cache key of a SenderIdentity.
pub fn identity_ref(si: &SenderIdentity) -> ObjectRef<Packed<SenderIdentity>> {
    cache_ref(si)
}
