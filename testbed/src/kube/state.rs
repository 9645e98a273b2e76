//! Shared server state: the registry of served types, the object store and the issued
//! service-account tokens, behind one mutex (every request is short and never awaits while
//! holding it), plus the wake-up for the garbage collector and the audit log.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::audit::AuditLog;
use super::authn::{Anonymous, Tokens};
use super::error::{ApiError, ApiResult};
use super::owner_refs::AdmissionPlugin;
use super::resources::{self, ResourceType, TypeKey};
use super::store::Store;
use super::version::KubeVersion;
use super::{KubeOptions, crd, meta, rbac, write};

pub struct State {
    inner: Mutex<Inner>,
    pub(crate) bookmark_interval: Duration,
    /// Fault injection: every watch ends after this long (clients must re-watch).
    pub(crate) watch_drop_every: Option<Duration>,
    /// Fault injection: LISTs of these resources (by plural) are answered this much later.
    pub(crate) slow_lists: Vec<(String, Duration)>,
    pub(crate) gc_wakeup: Arc<Notify>,
    pub(crate) audit: Option<AuditLog>,
}

pub struct Inner {
    pub types: Vec<ResourceType>,
    pub store: Store,
    pub gc_wakeup: Arc<Notify>,
    /// Issued service-account tokens.
    pub tokens: Tokens,
    /// Who a request without a bearer token is.
    pub anonymous: Anonymous,
    /// The `OwnerReferencesPermissionEnforcement` admission plugin is on.
    pub owner_references_enforced: bool,
    /// The Kubernetes version claimed (`/version`, the CEL environment of CRD rules).
    pub kube_version: KubeVersion,
}

impl State {
    pub(crate) fn new(opts: &KubeOptions, audit: Option<AuditLog>) -> Self {
        let gc_wakeup = Arc::new(Notify::new());
        let mut inner = Inner {
            types: resources::builtins(),
            store: Store::new(opts.history),
            gc_wakeup: gc_wakeup.clone(),
            tokens: Tokens::default(),
            anonymous: opts.anonymous,
            owner_references_enforced: opts
                .admission_plugins
                .contains(&AdmissionPlugin::OwnerReferencesPermissionEnforcement),
            kube_version: opts.kube_version,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let ns_type = inner.builtin("", "namespaces");
            let obj =
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
            if let Some(rt) = ns_type {
                // Cannot fail: fixed, valid names in an empty store.
                let _ = write::create(&mut inner, &rt, "", obj, &write::WriteOpts::system());
            }
        }
        // The default RBAC policy, as kube-apiserver's bootstrap-roles hook stores it.
        for (plural, obj) in rbac::bootstrap_policy() {
            if let Some(rt) = inner.builtin(rbac::GROUP, plural) {
                // Cannot fail: fixed, valid objects in an empty store.
                let _ = write::create(&mut inner, &rt, "", obj, &write::WriteOpts::system());
            }
        }
        // external-dns' DNSEndpoint is served, as in a cluster running external-dns, unless
        // turned off (then `dnsendpoints` is an unknown resource, as without external-dns).
        if opts.dns_endpoint_crd {
            let _ = inner.install_crd(crd::dns_endpoint_crd());
        }
        Self {
            inner: Mutex::new(inner),
            bookmark_interval: opts.bookmark_interval,
            watch_drop_every: opts.watch_drop_every,
            slow_lists: opts.slow_lists.clone(),
            gc_wakeup,
            audit,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Install or replace a CRD, as `kubectl apply` of it would.
    pub fn install_crd(&self, crd: Value) -> Result<(), ApiError> {
        self.lock().install_crd(crd)
    }

    /// A stored object, for tests: `group`, `plural`, namespace ("" for cluster scope), name.
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = TypeKey {
            group: group.to_string(),
            plural: plural.to_string(),
        };
        self.lock().store.get(&key, namespace, name).cloned()
    }
}

impl Inner {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Every type served in a group-version.
    pub fn types_in(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }

    pub fn builtin(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.crd.is_none())
            .cloned()
    }

    /// The first served version of a stored type (for GC and namespace cleanup).
    pub fn any_version(&self, key: &TypeKey) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == key.group && t.plural == key.plural)
            .cloned()
    }

    pub fn namespace_state(&self, ns: &str) -> NamespaceState {
        let key = TypeKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        match self.store.get(&key, "", ns) {
            None => NamespaceState::Missing,
            Some(obj) if meta::is_deleting(obj) => NamespaceState::Terminating,
            Some(_) => NamespaceState::Active,
        }
    }

    /// Create or update the CRD object through the normal write path.
    pub fn install_crd(&mut self, mut crd: Value) -> ApiResult<()> {
        let rt = self
            .builtin("apiextensions.k8s.io", "customresourcedefinitions")
            .ok_or_else(|| ApiError::internal("CRD type missing"))?;
        let name = meta::name(&crd).to_string();
        let opts = write::WriteOpts::system();
        match self.store.get(&rt.key(), "", &name).cloned() {
            None => write::create(self, &rt, "", crd, &opts).map(|_| ()),
            Some(existing) => {
                if let Some(rv) = meta::resource_version(&existing) {
                    meta::meta_mut(&mut crd).insert("resourceVersion".into(), json!(rv));
                }
                write::update(self, &rt, "", &name, false, crd, &opts).map(|_| ())
            }
        }
    }

    pub fn wake_gc(&self) {
        self.gc_wakeup.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceState {
    Missing,
    Active,
    Terminating,
}
