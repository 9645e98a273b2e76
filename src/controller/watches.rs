//! Every watch, and what each event wakes — in one place. See ARCHITECTURE.md for the picture.
//!
//! | watch | fills | wakes |
//! |---|---|---|
//! | EmailSettings | the EmailSettings cache | the EmailSettings; its SenderIdentities when its spec, existence or published generation changed ([`SettingsTriggers`]) |
//! | SenderIdentity | the SenderIdentity cache | the SenderIdentity; its siblings when the policy's view of it changed, its EmailSettings when what that reads changed ([`Triggers`]) |
//! | Secret (metadata) | the [`SecretCache`] versions | the EmailSettings that read, own, or (default relay) use the Secret |
//! | DNSEndpoint (owned) | — | its SenderIdentity (an edit or deletion is put right) |
//! | the bulk re-check ([`recheck`]) | — | SenderIdentities whose listed SES status changed |
//!
//! The order of what each cache-filling event reaches is fixed by [`cached`], not by the order
//! of calls at the call site: the namespace index, then the cache, then its sync flag, then the
//! triggers and the per-object memory — so a woken object always reads a cache that already
//! holds the event that woke it (a second watch of the same objects could deliver first, and a
//! SenderIdentity reading a cache without its new EmailSettings would be rejected with nothing
//! to wake it again).

use super::backends::Backends;
use super::config::Config;
use super::context::{Cache, Caches, Context};
use super::index::NamespaceIndex;
use super::recheck;
use super::triggers::{SettingsTriggers, Triggers};
use super::{email_settings, sender_identity};
use crate::clock::Clock;
use crate::crd::{EmailSettings, SenderIdentity};
use futures::{Stream, StreamExt};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Arc;

/// A watch that fills a cache, each event reaching, in this order: the namespace index, the
/// cache, its sync flag, then `then` (triggers, memory). Objects drop their `managedFields`
/// first: nothing reads them, and they are a large part of every object (one entry per field
/// manager).
fn cached<K, B>(
    watch: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    index: NamespaceIndex,
    writer: Writer<K>,
    ctx: Arc<Context<B>>,
    cache: Cache,
    mut then: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + std::fmt::Debug + 'static,
    B: Backends,
{
    watch
        .default_backoff()
        .modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
        .inspect(index.feed())
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                ctx.caches.sync.observe(cache, event);
                then(event);
            }
        })
        .applied_objects()
}

/// Forgets what this process learned of an object once its watch reports it deleted.
fn forget_deleted<K: Resource, B: Backends>(ctx: &Context<B>, event: &watcher::Event<K>) {
    if let watcher::Event::Delete(obj) = event
        && let Some(uid) = obj.meta().uid.as_deref()
    {
        ctx.forget(uid);
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
    let (es_reader, es_writer) = reflector::store();
    let (si_reader, si_writer) = reflector::store();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Caches::new(es_reader.clone(), si_reader.clone()),
        backends,
        clock,
        config,
    ));
    let (si_wake, si_wake_rx) = futures::channel::mpsc::unbounded();
    let (es_wake, es_wake_rx) = futures::channel::mpsc::unbounded();
    let es_stream = settings_stream(&ctx, es_writer, si_wake.clone());
    let si_stream = identities_stream(&ctx, si_writer, si_wake.clone(), es_wake);

    let gauges = si_reader.clone();
    crate::metrics::on_scrape(move || refresh_gauges(&gauges));
    tokio::spawn(recheck::run(ctx.clone(), si_wake));

    let es_controller = Controller::for_stream(es_stream, es_reader)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .watches_stream(secret_events(&ctx), secret_mapper(ctx.clone()))
        .reconcile_on(es_wake_rx)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            email_settings::reconcile,
            email_settings::error_policy,
            ctx.clone(),
        )
        .for_each(log_error);
    let si_controller = with_dns_endpoints(
        Controller::for_stream(si_stream, si_reader)
            .with_config(controller::Config::default().concurrency(ctx.config.concurrency)),
        &client,
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
    futures::join!(si_controller, es_controller);
}

/// The EmailSettings watch: fills its cache, then wakes the SenderIdentities an event concerns.
fn settings_stream<B: Backends>(
    ctx: &Arc<Context<B>>,
    writer: Writer<EmailSettings>,
    si_wake: Wake<DeserializeGuard<SenderIdentity>>,
) -> impl Stream<Item = Result<EmailSettings, watcher::Error>> + Send + use<B> {
    let mut triggers = SettingsTriggers::new(
        ctx.caches.identities.clone(),
        ctx.caches.identities_index.clone(),
        si_wake,
    );
    let memory = ctx.clone();
    cached(
        watcher(
            Api::<EmailSettings>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
        ctx.caches.settings_index.clone(),
        writer,
        ctx.clone(),
        Cache::Settings,
        move |event| {
            triggers.observe(event);
            forget_deleted(&memory, event);
        },
    )
}

/// The SenderIdentity watch: fills its cache, then wakes the siblings and the EmailSettings an
/// event concerns.
fn identities_stream<B: Backends>(
    ctx: &Arc<Context<B>>,
    writer: Writer<DeserializeGuard<SenderIdentity>>,
    si_wake: Wake<DeserializeGuard<SenderIdentity>>,
    es_wake: Wake<EmailSettings>,
) -> impl Stream<Item = Result<DeserializeGuard<SenderIdentity>, watcher::Error>> + Send + use<B> {
    let mut triggers = Triggers::new(
        ctx.caches.identities.clone(),
        ctx.caches.identities_index.clone(),
        si_wake,
        es_wake,
    );
    let memory = ctx.clone();
    cached(
        watcher(
            Api::<DeserializeGuard<SenderIdentity>>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
        ctx.caches.identities_index.clone(),
        writer,
        ctx.clone(),
        Cache::Identities,
        move |event| {
            triggers.observe(event);
            forget_deleted(&memory, event);
        },
    )
}

async fn log_error<T, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "reconcile error");
    }
}

/// Secrets are watched by metadata only (enough to notice a change) and feed the Secret cache's
/// versions.
fn secret_events<B: Backends>(
    ctx: &Arc<Context<B>>,
) -> impl Stream<Item = Result<PartialObjectMeta<k8s_openapi::api::core::v1::Secret>, watcher::Error>>
+ Send
+ 'static {
    watcher(
        Api::<PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect(ctx.secrets.feed())
    .touched_objects()
}

/// A Secret concerns the EmailSettings that read, publish or (the default relay) use it; only
/// the default relay concerns other namespaces.
fn secret_mapper<B: Backends>(
    ctx: Arc<Context<B>>,
) -> impl Fn(PartialObjectMeta<k8s_openapi::api::core::v1::Secret>) -> Vec<ObjectRef<EmailSettings>>
+ Send
+ Sync
+ 'static {
    move |secret| {
        let ns = secret.metadata.namespace.as_deref();
        let name = secret.name_any();
        let relay = ctx.config.smtp.default_relay.as_ref();
        let candidates = if email_settings::is_default_relay(ns, &name, relay) {
            ctx.caches.settings.state()
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
    controller: Controller<DeserializeGuard<SenderIdentity>>,
    client: &Client,
) -> Controller<DeserializeGuard<SenderIdentity>> {
    let endpoints = sender_identity::dns_endpoint::api_resource();
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &endpoints);
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => controller.owns_with(api, endpoints, watcher::Config::default()),
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

/// The cache key of a SenderIdentity in the guarded cache.
pub fn guard_ref(si: &SenderIdentity) -> ObjectRef<DeserializeGuard<SenderIdentity>> {
    ObjectRef::new(&si.name_any()).within(&si.namespace().unwrap_or_default())
}

/// `email_operator_sender_identities{status}` from the cache, at scrape time.
fn refresh_gauges(identities: &reflector::Store<DeserializeGuard<SenderIdentity>>) {
    let mut counts: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
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
