//! Reconcile-level tests: each controller's `reconcile` called directly, against the in-process
//! Kubernetes stand-in and recording fakes of the other systems ([`Fakes`]: an in-memory SES
//! that records every call, DNS answers the test sets, a connection test that answers as
//! scripted) and a clock that moves only when told. No operator binary, no watches: the
//! harness fills the controllers' caches from the API server before each reconcile, as a
//! complete listing would.
#![allow(dead_code)]

use email_operator::clock::Clock;
use email_operator::controller::config::{Recheck, Ses, Smtp, Tenancy, Windows};
use email_operator::controller::context::Cache;
use email_operator::controller::packed::Packed;
use email_operator::controller::{
    Backends, Caches, Config, Context, SesKey, Stale, email_settings, sender_identity,
};
use email_operator::crd::sender_identity::SenderIdentityStatus;
use email_operator::crd::{EmailSettings, EmailSettingsStatus, SenderIdentity, SenderPolicy};
use email_operator::dns::lookup::{Answer, DnsLookup};
use email_operator::ses::{
    IdentityDetails, ListedIdentity, SesApi, SesError, VerificationStatus, identity_key,
};
use email_operator::smtp::target::Prepared;
use email_operator::smtp::{ConnectionPath, ConnectionTest, Failure, Outcome};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testbed::kube::{KubeOptions, KubeServer};

/// The account the fake SES and the configuration name.
pub const ACCOUNT: &str = "123456789012";
/// The cluster id in owner tags.
pub const CLUSTER: &str = "test-cluster";
/// Where SenderPolicies are honoured.
pub const POLICIES: &str = "email-system";
/// Where the default relay Secret lives.
pub const RELAY: (&str, &str) = ("email-system", "default-relay");

/// One call the fake SES answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub region: String,
    pub op: &'static str,
    pub name: String,
}

/// What the fake SES holds, shared by the clients of every region.
#[derive(Default)]
struct World {
    identities: BTreeMap<(String, String), IdentityDetails>,
    calls: Vec<Call>,
    /// Answers given once instead of the operation's, in order, per operation.
    scripted: HashMap<&'static str, VecDeque<SesError>>,
    tokens: u32,
}

/// An in-memory SES: identities per region, every call recorded.
#[derive(Clone, Default)]
pub struct FakeSes(Arc<Mutex<World>>);

/// The fake SES as one region's client.
#[derive(Clone)]
pub struct SesClient {
    region: String,
    world: FakeSes,
}

impl FakeSes {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The operations called so far, in order.
    pub fn ops(&self) -> Vec<&'static str> {
        self.world().calls.iter().map(|c| c.op).collect()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.world().calls.clear();
    }

    /// `op` answers `error` the next time it is called (instead of acting).
    pub fn fail_next(&self, op: &'static str, error: SesError) {
        self.world()
            .scripted
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// The identity as SES holds it.
    pub fn get(&self, region: &str, name: &str) -> Option<IdentityDetails> {
        self.world()
            .identities
            .get(&(region.to_string(), identity_key(name)))
            .cloned()
    }

    /// Puts an identity in SES as someone else would (a console, another tool).
    pub fn insert(&self, region: &str, name: &str, details: IdentityDetails) {
        self.world()
            .identities
            .insert((region.to_string(), identity_key(name)), details);
    }

    /// Deletes an identity as someone else would.
    pub fn remove(&self, region: &str, name: &str) {
        self.world()
            .identities
            .remove(&(region.to_string(), identity_key(name)));
    }

    /// Changes an identity as SES would (verification, a removed record).
    pub fn update(&self, region: &str, name: &str, change: impl FnOnce(&mut IdentityDetails)) {
        let mut world = self.world();
        let details = world
            .identities
            .get_mut(&(region.to_string(), identity_key(name)))
            .expect("the identity exists in the fake SES");
        change(details);
    }

    /// SES saw the records (or the link was followed): verified for sending.
    pub fn verify(&self, region: &str, name: &str) {
        self.update(region, name, |d| {
            d.verification_status = VerificationStatus::Success;
            d.verified_for_sending = true;
            if d.dkim_status.is_some() {
                d.dkim_status = Some(VerificationStatus::Success);
            }
        });
    }

    /// How many identities SES holds in `region`.
    pub fn count(&self, region: &str) -> usize {
        self.world()
            .identities
            .keys()
            .filter(|(r, _)| r == region)
            .count()
    }
}

impl SesClient {
    /// Records the call; the scripted answer, if one waits for `op`.
    fn call(&self, op: &'static str, name: &str) -> Result<(), SesError> {
        let mut world = self.world.world();
        world.calls.push(Call {
            region: self.region.clone(),
            op,
            name: name.to_string(),
        });
        match world.scripted.get_mut(op).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut IdentityDetails) -> T,
    ) -> Result<T, SesError> {
        let mut world = self.world.world();
        world
            .identities
            .get_mut(&(self.region.clone(), identity_key(name)))
            .map(f)
            .ok_or(SesError::NotFound)
    }
}

impl SesApi for SesClient {
    async fn create_identity(
        &self,
        name: &str,
        tags: &[(String, String)],
        key_length: Option<&str>,
    ) -> Result<Option<IdentityDetails>, SesError> {
        self.call("CreateEmailIdentity", name)?;
        let mut world = self.world.world();
        let key = (self.region.clone(), identity_key(name));
        if world.identities.contains_key(&key) {
            return Err(SesError::AlreadyExists);
        }
        world.tokens += 1;
        let n = world.tokens;
        let is_domain = !name.contains('@');
        let details = IdentityDetails {
            verification_status: VerificationStatus::Pending,
            dkim_status: is_domain.then_some(VerificationStatus::Pending),
            dkim_tokens: if is_domain {
                (0..3).map(|i| format!("token{n}x{i}")).collect()
            } else {
                vec![]
            },
            signing_hosted_zone: is_domain.then(|| "dkim.amazonses.com".to_string()),
            next_key_length: key_length.map(str::to_string),
            tags: tags.to_vec(),
            ..Default::default()
        };
        world.identities.insert(key, details.clone());
        // SES answers a creation with whether it may send and, for a domain, its DKIM tokens
        // and signing zone: all a new identity's status shows.
        Ok(Some(details))
    }

    async fn get_identity(&self, name: &str) -> Result<IdentityDetails, SesError> {
        self.call("GetEmailIdentity", name)?;
        self.with(name, |d| d.clone())
    }

    async fn list_identities(
        &self,
        _next_token: Option<String>,
    ) -> Result<(Vec<ListedIdentity>, Option<String>), SesError> {
        self.call("ListEmailIdentities", "")?;
        let world = self.world.world();
        let listed = world
            .identities
            .iter()
            .filter(|((r, _), _)| *r == self.region)
            .map(|((_, name), d)| ListedIdentity {
                name: name.clone(),
                verification_status: d.verification_status,
                sending_enabled: d.verified_for_sending,
            })
            .collect();
        Ok((listed, None))
    }

    async fn get_account(&self) -> Result<email_operator::ses::AccountStanding, SesError> {
        self.call("GetAccount", "")?;
        Ok(email_operator::ses::AccountStanding::production())
    }

    async fn delete_identity(&self, name: &str) -> Result<(), SesError> {
        self.call("DeleteEmailIdentity", name)?;
        let mut world = self.world.world();
        world
            .identities
            .remove(&(self.region.clone(), identity_key(name)))
            .map(|_| ())
            .ok_or(SesError::NotFound)
    }

    async fn tag_identity(&self, name: &str, tags: &[(String, String)]) -> Result<(), SesError> {
        self.call("TagResource", name)?;
        self.with(name, |d| {
            for (k, v) in tags {
                d.tags.retain(|(key, _)| key != k);
                d.tags.push((k.clone(), v.clone()));
            }
        })
    }

    async fn untag_identity(&self, name: &str, keys: &[String]) -> Result<(), SesError> {
        self.call("UntagResource", name)?;
        self.with(name, |d| d.tags.retain(|(k, _)| !keys.contains(k)))
    }

    async fn put_mail_from(&self, name: &str, domain: Option<&str>) -> Result<(), SesError> {
        self.call("PutEmailIdentityMailFromAttributes", name)?;
        self.with(name, |d| {
            d.mail_from_domain = domain.map(str::to_string);
            d.mail_from_status = domain.map(|_| VerificationStatus::Pending);
        })
    }

    async fn put_dkim_key_length(&self, name: &str, key_length: &str) -> Result<(), SesError> {
        self.call("PutEmailIdentityDkimSigningAttributes", name)?;
        self.with(name, |d| d.next_key_length = Some(key_length.to_string()))
    }
}

/// DNS answers the test sets; anything else is missing.
#[derive(Clone, Default)]
pub struct FakeDns(Arc<Mutex<HashMap<(String, String), Answer>>>);

impl FakeDns {
    /// `name` answers `values` for `record_type`.
    pub fn set(&self, name: &str, record_type: &str, values: &[&str]) {
        self.0.lock().expect("lock").insert(
            (name.to_ascii_lowercase(), record_type.to_string()),
            Answer::Found(values.iter().map(|v| v.to_string()).collect()),
        );
    }
}

impl DnsLookup for FakeDns {
    async fn lookup(&self, name: &str, record_type: &str) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.0
            .lock()
            .expect("lock")
            .get(&(name, record_type.to_string()))
            .cloned()
            .unwrap_or(Answer::Missing)
    }
}

/// A connection test that answers as scripted and records what it was asked to test.
#[derive(Clone)]
pub struct FakeTester {
    answer: Arc<Mutex<Result<Outcome, Failure>>>,
    tested: Arc<Mutex<Vec<(String, u16, String)>>>,
    /// The (host, letter) of every message sent.
    letters: Arc<Mutex<Vec<(String, email_operator::smtp::Letter)>>>,
}

impl Default for FakeTester {
    fn default() -> Self {
        Self {
            answer: Arc::new(Mutex::new(Ok(Outcome {
                path: ConnectionPath::StartTls,
                port: 587,
                duration: Duration::from_millis(40),
            }))),
            tested: Arc::default(),
            letters: Arc::default(),
        }
    }
}

impl FakeTester {
    /// Every later test answers `answer`.
    pub fn answer(&self, answer: Result<Outcome, Failure>) {
        *self.answer.lock().expect("lock") = answer;
    }

    /// The (host, port, username) of every test run.
    pub fn tested(&self) -> Vec<(String, u16, String)> {
        self.tested.lock().expect("lock").clone()
    }

    /// The (host, letter) of every message sent.
    pub fn letters(&self) -> Vec<(String, email_operator::smtp::Letter)> {
        self.letters.lock().expect("lock").clone()
    }
}

impl ConnectionTest for FakeTester {
    async fn test(&self, prepared: &Prepared) -> Result<Outcome, Failure> {
        self.tested.lock().expect("lock").push((
            prepared.target.host.clone(),
            prepared.target.port,
            prepared.username.clone(),
        ));
        self.answer.lock().expect("lock").clone()
    }

    /// Sends when the connection test would pass: the server takes the message.
    async fn send(
        &self,
        prepared: &Prepared,
        letter: &email_operator::smtp::Letter,
    ) -> Result<email_operator::smtp::Sent, Failure> {
        let outcome = self.answer.lock().expect("lock").clone()?;
        self.letters
            .lock()
            .expect("lock")
            .push((prepared.target.host.clone(), letter.clone()));
        Ok(email_operator::smtp::Sent {
            path: outcome.path,
            port: outcome.port,
            stage: "DATA",
            code: 250,
            text: "Ok fake-message-id".into(),
        })
    }
}

/// The fakes as the controllers' backends.
#[derive(Clone, Default)]
pub struct Fakes {
    pub ses: FakeSes,
    pub dns: FakeDns,
    pub tester: FakeTester,
}

impl Backends for Fakes {
    type Ses = SesClient;
    type Dns = FakeDns;
    type Tester = FakeTester;

    async fn ses(&self, key: &SesKey) -> SesClient {
        SesClient {
            region: key.region.clone(),
            world: self.ses.clone(),
        }
    }

    fn dns(&self) -> &FakeDns {
        &self.dns
    }

    fn tester(&self) -> &FakeTester {
        &self.tester
    }
}

/// A clock that moves only when told.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("lock");
        *now += SignedDuration::try_from(by).expect("a duration that fits");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("lock")
    }
}

/// The Kubernetes stand-in with the operator's CRDs, a context over [`Fakes`], and the writers
/// of its caches.
pub struct Harness {
    pub server: KubeServer,
    pub client: Client,
    pub ctx: Arc<Context<Fakes>>,
    pub fakes: Fakes,
    pub clock: Arc<ManualClock>,
    settings: Mutex<Writer<Packed<EmailSettings>>>,
    identities: Mutex<Writer<Packed<SenderIdentity>>>,
    policies: Mutex<Writer<SenderPolicy>>,
    namespaces: Mutex<Writer<PartialObjectMeta<Namespace>>>,
}

/// The operator's settings in these tests: the defaults, a cluster id, the default relay.
pub fn config() -> Config {
    Config {
        cluster_id: CLUSTER.into(),
        concurrency: 1,
        ses: Ses {
            max_rps: 1.0,
            aws_account_id: Some(ACCOUNT.into()),
            account_every: email_operator::controller::config::ACCOUNT_EVERY,
        },
        recheck: Recheck {
            verified_every: Duration::from_secs(3600),
            windows: Windows::default(),
        },
        smtp: Smtp {
            default_relay: Some((RELAY.0.into(), RELAY.1.into())),
            ..Smtp::default()
        },
        tenancy: Tenancy {
            policy_namespace: POLICIES.into(),
            default_relay_namespaces: vec!["shop".into()],
        },
        watch_namespaces: vec![],
    }
}

impl Harness {
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
        let server = KubeServer::start(KubeOptions {
            crd_dirs: vec![crds],
            ..KubeOptions::default()
        })
        .await
        .expect("the Kubernetes stand-in starts");
        let mut kube_config = kube::Config::new(server.url().parse().expect("url"));
        kube_config.default_namespace = "default".into();
        let client = Client::try_from(kube_config).expect("client");
        let (es_reader, es_writer) = reflector::store();
        let (si_reader, si_writer) = reflector::store();
        let (policy_reader, policy_writer) = reflector::store();
        let (ns_reader, ns_writer) = reflector::store();
        let fakes = Fakes::default();
        let clock = Arc::new(ManualClock(Mutex::new(
            Timestamp::from_second(Timestamp::now().as_second()).expect("now"),
        )));
        let ctx = Arc::new(Context::new(
            client.clone(),
            Caches::new(es_reader, si_reader)
                .with_policies(policy_reader)
                .with_namespaces(ns_reader),
            fakes.clone(),
            clock.clone(),
            config(),
        ));
        let h = Self {
            server,
            client,
            ctx,
            fakes,
            clock,
            settings: Mutex::new(es_writer),
            identities: Mutex::new(si_writer),
            policies: Mutex::new(policy_writer),
            namespaces: Mutex::new(ns_writer),
        };
        // `tenant-b` sorts after `shop`: objects created within the same second are ordered
        // by namespace, so its claims are the later ones.
        for ns in ["shop", "billing", "other", "tenant-b", POLICIES] {
            h.namespace(ns).await;
        }
        h
    }

    pub fn ses(&self) -> &FakeSes {
        &self.fakes.ses
    }

    pub async fn namespace(&self, name: &str) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        let _ = api.create(&PostParams::default(), &ns).await;
    }

    /// Creates (or replaces the spec of) an object from its JSON form.
    pub async fn apply(&self, obj: Value) {
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let ns = obj["metadata"]["namespace"].as_str().expect("namespace");
        let name = obj["metadata"]["name"].as_str().expect("name");
        let params = PatchParams::apply("test").force();
        let result = match kind.as_str() {
            "EmailSettings" => Api::<EmailSettings>::namespaced(self.client.clone(), ns)
                .patch(name, &params, &Patch::Apply(&obj))
                .await
                .map(|_| ()),
            "SenderIdentity" => Api::<SenderIdentity>::namespaced(self.client.clone(), ns)
                .patch(name, &params, &Patch::Apply(&obj))
                .await
                .map(|_| ()),
            "SenderPolicy" => Api::<SenderPolicy>::namespaced(self.client.clone(), ns)
                .patch(name, &params, &Patch::Apply(&obj))
                .await
                .map(|_| ()),
            "Secret" => Api::<Secret>::namespaced(self.client.clone(), ns)
                .patch(name, &params, &Patch::Apply(&obj))
                .await
                .map(|_| ()),
            other => panic!("cannot apply a {other}"),
        };
        result.unwrap_or_else(|e| panic!("{kind} {ns}/{name} applies: {e}"));
    }

    /// Fills both caches (and their indexes) with what the API server holds, as a complete
    /// listing does, and marks them synced.
    pub async fn sync_caches(&self) {
        let settings = Api::<EmailSettings>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("EmailSettings list");
        let identities = Api::<DeserializeGuard<SenderIdentity>>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("SenderIdentity list");
        let policies = Api::<SenderPolicy>::namespaced(self.client.clone(), POLICIES)
            .list(&ListParams::default())
            .await
            .expect("SenderPolicy list");
        let namespaces = Api::<Namespace>::all(self.client.clone())
            .list_metadata(&ListParams::default())
            .await
            .expect("Namespace list");
        // As the watches do: a written status the cache now shows is let go.
        for es in &settings.items {
            self.ctx
                .cache_shows(es.uid().as_deref().unwrap_or_default(), es.status.as_ref());
        }
        for si in identities.items.iter().filter_map(|g| g.0.as_ref().ok()) {
            self.ctx
                .cache_shows(si.uid().as_deref().unwrap_or_default(), si.status.as_ref());
        }
        let caches = &self.ctx.caches;
        relist(
            &mut self.settings.lock().expect("lock"),
            |e| {
                caches.settings_index.observe(e);
                caches.claims.observe_settings(e);
            },
            settings.items,
            Packed::pack,
        );
        relist(
            &mut self.identities.lock().expect("lock"),
            |e| {
                caches.identities_index.observe(e);
                caches.claims.observe_identities(e);
            },
            identities.items,
            Packed::pack_guard,
        );
        relist(
            &mut self.policies.lock().expect("lock"),
            |_| {},
            policies.items,
            Clone::clone,
        );
        relist(
            &mut self.namespaces.lock().expect("lock"),
            |_| {},
            namespaces.items,
            Clone::clone,
        );
        for cache in [
            Cache::Settings,
            Cache::Identities,
            Cache::Policies,
            Cache::Namespaces,
        ] {
            caches
                .sync
                .observe::<EmailSettings>(cache, &watcher::Event::InitDone);
        }
    }

    /// Reconciles the SenderIdentity once, as the controller would on a watch event.
    pub async fn reconcile_si(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Action, sender_identity::Error> {
        self.sync_caches().await;
        let guard = Api::<DeserializeGuard<SenderIdentity>>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .expect("the SenderIdentity exists");
        sender_identity::reconcile(Arc::new(Packed::pack_guard(&guard)), self.ctx.clone()).await
    }

    /// Reconciles `snapshot`, an older copy of a SenderIdentity, as the controller does when
    /// the watch catches up between taking an object from its cache and reconciling it.
    pub async fn reconcile_si_snapshot(
        &self,
        snapshot: SenderIdentity,
    ) -> Result<Action, sender_identity::Error> {
        self.sync_caches().await;
        sender_identity::reconcile(Arc::new(Packed::pack(&snapshot)), self.ctx.clone()).await
    }

    /// Reconciles the SenderIdentity until its finalizer is on and one reconcile has acted
    /// (the first reconcile of a new object only adds the finalizer).
    pub async fn reconcile_new_si(&self, ns: &str, name: &str) -> Action {
        let first = self.reconcile_si(ns, name).await.expect("finalizer added");
        assert_eq!(
            first,
            Action::await_change(),
            "the first reconcile adds the finalizer"
        );
        self.reconcile_si(ns, name).await.expect("reconciled")
    }

    /// Reconciles the EmailSettings once.
    pub async fn reconcile_es(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Action, email_settings::Error> {
        self.sync_caches().await;
        let es = Api::<EmailSettings>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .expect("the EmailSettings exists");
        email_settings::reconcile(Arc::new(Packed::pack(&es)), self.ctx.clone()).await
    }

    pub async fn si(&self, ns: &str, name: &str) -> Option<SenderIdentity> {
        Api::<SenderIdentity>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .expect("get")
    }

    /// The SenderIdentity's status (it must exist and have one).
    pub async fn si_status(&self, ns: &str, name: &str) -> SenderIdentityStatus {
        self.si(ns, name)
            .await
            .and_then(|si| si.status)
            .unwrap_or_else(|| panic!("SenderIdentity {ns}/{name} has a status"))
    }

    /// The EmailSettings' status (it must have one).
    pub async fn es_status(&self, ns: &str, name: &str) -> EmailSettingsStatus {
        self.es(ns, name)
            .await
            .status
            .unwrap_or_else(|| panic!("EmailSettings {ns}/{name} has a status"))
    }

    /// SES verifies `identity` in `region` and the bulk listing notices (marks it to be read).
    pub fn verified_by_listing(&self, region: &str, identity: &str) {
        self.ses().verify(region, identity);
        self.listing_changed(region, identity);
    }

    /// The bulk listing, begun now, saw `identity`'s status change in `region` (or saw it
    /// missing): it marks it with what SES lists.
    pub fn listing_changed(&self, region: &str, identity: &str) {
        let key = SesKey {
            region: region.into(),
            role_arn: None,
            namespace: None,
        };
        let why = match self.ses().get(region, identity) {
            Some(d) => Stale::Listed {
                began: self.ctx.clock.now(),
                status: d.verification_status,
                sending: d.verified_for_sending,
            },
            None => Stale::Unread,
        };
        self.ctx.mark_dirty(&key, identity, why);
    }

    pub async fn es(&self, ns: &str, name: &str) -> EmailSettings {
        Api::<EmailSettings>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .expect("get")
    }

    pub async fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .expect("get")
    }

    pub async fn delete_si(&self, ns: &str, name: &str) {
        Api::<SenderIdentity>::namespaced(self.client.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    pub async fn delete_es(&self, ns: &str, name: &str) {
        Api::<EmailSettings>::namespaced(self.client.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// Whether an Event with `reason` was published about an object in `ns`.
    pub async fn said(&self, ns: &str, reason: &str) -> bool {
        self.event_reasons(ns).await.iter().any(|r| r == reason)
    }

    /// The Events about the object `name` in `ns`: (reason, note), in alphabetical order.
    pub async fn events_about(&self, ns: &str, name: &str) -> Vec<(String, String)> {
        let mut events: Vec<(String, String)> = self
            .events(ns)
            .await
            .into_iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.name.as_deref() == Some(name))
            })
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        events.sort();
        events
    }

    /// The Events in `ns`.
    async fn events(&self, ns: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
    }

    /// The reasons of the Events about objects in `ns`, oldest first.
    pub async fn event_reasons(&self, ns: &str) -> Vec<String> {
        let mut events = self.events(ns).await;
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        events.into_iter().filter_map(|e| e.reason).collect()
    }
}

/// A complete listing of `items`, through the indexes (`index`) and into the cache.
/// A complete listing of `items`, through `index` (whole objects) and into the cache `writer`
/// (each object as `cached` keeps it), as the operator's watches deliver one.
fn relist<K, C>(
    writer: &mut Writer<C>,
    index: impl Fn(&watcher::Event<K>),
    items: Vec<K>,
    cached: impl Fn(&K) -> C,
) where
    C: kube::Resource<DynamicType = ()> + Clone,
{
    index(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::Init);
    for item in items {
        let event = watcher::Event::InitApply(item);
        index(&event);
        if let watcher::Event::InitApply(obj) = &event {
            writer.apply_watcher_event(&watcher::Event::InitApply(cached(obj)));
        }
    }
    index(&watcher::Event::InitDone);
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

/// The condition `type_` of a status's conditions: (status, reason).
pub fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// An AdvancedSmtp EmailSettings in `ns` (region eu-west-1) whose active users are of
/// yourcompany.com, and its SES SMTP credentials Secret.
pub async fn ses_settings(h: &Harness, ns: &str, region: &str) {
    h.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ses-smtp-user", "namespace": ns},
        "stringData": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    }))
    .await;
    h.apply(json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": ns},
        "spec": {
            "from": "orders@yourcompany.com",
            "delivery": "AdvancedSmtp",
            "activeUsers": ["employee@yourcompany.com"],
            "advancedSmtp": {"region": region, "smtpCredentialsSecretRef": {"name": "ses-smtp-user"}}
        }
    }))
    .await;
}

/// A SenderIdentity `name` in `ns` for `identity`, of the EmailSettings `notifications`.
pub fn sender(ns: &str, name: &str, identity: &str) -> Value {
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"emailSettingsRef": {"name": "notifications"}, "identity": identity}
    })
}

/// When `action` comes back (None: on a change only).
pub fn requeue_after(action: &Action) -> Option<Duration> {
    // Action does not expose its delay; its Debug form does.
    let debug = format!("{action:?}");
    let inner = debug
        .split("Some(")
        .nth(1)?
        .trim_end_matches([')', ' ', '}']);
    parse_debug_duration(inner)
}

fn parse_debug_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "ns" => Duration::from_nanos(n as u64),
        "µs" | "us" => Duration::from_secs_f64(n / 1e6),
        "ms" => Duration::from_secs_f64(n / 1e3),
        "s" => Duration::from_secs_f64(n),
        _ => return None,
    })
}

/// A SenderPolicy in the policy namespace granting `domains` to `namespaces`.
pub fn policy(name: &str, namespaces: &[&str], domains: &[&str], share: bool) -> Value {
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
        "metadata": {"name": name, "namespace": POLICIES},
        "spec": {"namespaces": namespaces, "domains": domains, "shareIdentities": share}
    })
}
