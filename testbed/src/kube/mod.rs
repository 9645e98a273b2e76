//! A wire-level stand-in for kube-apiserver, for tests and demos.
//!
//! It serves plain HTTP on 127.0.0.1 and speaks enough of the real API for the `kube` client,
//! `kube::runtime::Controller` and `kubectl` to work unmodified: discovery, get/list/watch,
//! create/update/patch (merge, JSON patch, server-side apply)/delete, the status subresource,
//! finalizers, owner-reference garbage collection, CRD schema + CEL admission, and Tables.
//! It refuses what kube-apiserver refuses: object metadata of every kind is validated on
//! every write (`validation.rs`), Events by the events.k8s.io/v1 rules, and CRD CEL rules may
//! only call functions of the CEL environment of the Kubernetes version it claims
//! ([`KubeOptions::kube_version`], `cel_env.rs`).
//! Requests are authenticated by bearer token (the admin's static token, or minted
//! ServiceAccount tokens) and authorized by RBAC against the stored roles and bindings; an
//! optional audit log records who did what.
//!
//! [`KubeServer::start`] returns a handle; the caller decides what runs beside it.

mod admission;
mod apply;
mod audit;
mod authn;
mod builtin;
mod cel_compile;
mod cel_env;
mod crd;
mod delete;
mod discovery;
mod error;
mod event_validation;
mod formats;
mod gc;
mod http;
mod jsonpath;
mod kubeconfig;
mod meta;
mod openapi_doc;
mod owner_refs;
mod patch;
mod protobuf;
mod rbac;
mod read;
mod request_info;
mod resources;
mod selector;
mod state;
mod store;
mod structural;
mod table;
mod token;
mod validation;
mod version;
mod watch;
mod write;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

pub use authn::{ADMIN_TOKEN, ADMIN_USER, Anonymous, UserInfo, service_account_user};
pub use error::ApiError;
pub use owner_refs::AdmissionPlugin;
pub use state::State;
pub use version::{DEFAULT_KUBE_VERSION, KubeVersion};

/// How to run the stand-in.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// Listen address; port 0 picks an ephemeral port.
    pub addr: SocketAddr,
    /// Directories whose `*.yaml` / `*.yml` / `*.json` CRDs are installed at start.
    pub crd_dirs: Vec<PathBuf>,
    /// How many change events are kept for watch resumption; older versions get 410 Gone.
    pub history: usize,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Who a request without a bearer token is: the admin (default) or, as kube-apiserver
    /// with `--anonymous-auth`, `system:anonymous` under RBAC.
    pub anonymous: Anonymous,
    /// Admission plugins that are on. The default holds
    /// `OwnerReferencesPermissionEnforcement`, as on hardened clusters and OpenShift; remove
    /// it like kube-apiserver's `--disable-admission-plugins` to accept any owner reference.
    pub admission_plugins: Vec<AdmissionPlugin>,
    /// The Kubernetes version claimed: reported by `/version`, and the CEL environment CRD
    /// validation rules compile against (kube-apiserver compiles new rules with the previous
    /// minor's). Default [`DEFAULT_KUBE_VERSION`], the chart's minimum.
    pub kube_version: KubeVersion,
    /// Serve external-dns' `DNSEndpoint` CRD (default), as in a cluster running external-dns;
    /// without it, requests for `dnsendpoints` get the 404 of an unknown resource.
    pub dns_endpoint_crd: bool,
    /// Append an audit log (JSON lines, `audit.k8s.io/v1` Events at level Metadata) here.
    pub audit_log: Option<PathBuf>,
    /// Fault injection: end every watch after this long, as an API server restart or a load
    /// balancer's idle timeout does; clients must re-watch from their last resourceVersion.
    pub watch_drop_every: Option<Duration>,
    /// Fault injection: answer every LIST of these resources (by plural, e.g. `emailsettings`)
    /// this much later, as a slow etcd range read does; a client's caches of them fill late.
    pub slow_lists: Vec<(String, Duration)>,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 0).into(),
            crd_dirs: Vec::new(),
            history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            anonymous: Anonymous::default(),
            admission_plugins: vec![AdmissionPlugin::OwnerReferencesPermissionEnforcement],
            kube_version: DEFAULT_KUBE_VERSION,
            dns_endpoint_crd: true,
            audit_log: None,
            watch_drop_every: None,
            slow_lists: Vec::new(),
        }
    }
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read CRDs from {path}: {source}")]
    ReadCrd {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse CRD document in {path}: {message}")]
    ParseCrd { path: PathBuf, message: String },
    #[error("CRD in {path} refused: {message}")]
    RefusedCrd { path: PathBuf, message: String },
    #[error("cannot open the audit log {path}: {source}")]
    AuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running stand-in. Dropping the handle stops it too.
pub struct KubeServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: signal::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl KubeServer {
    /// Bind, install the CRDs found in `opts.crd_dirs`, and start serving.
    pub async fn start(opts: KubeOptions) -> Result<Self, StartError> {
        let audit = match &opts.audit_log {
            Some(path) => {
                Some(
                    audit::AuditLog::create(path).map_err(|source| StartError::AuditLog {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let state = Arc::new(State::new(&opts, audit));
        for dir in &opts.crd_dirs {
            install_dir(&state, dir)?;
        }
        let listener = TcpListener::bind(opts.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: opts.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: opts.addr,
            source,
        })?;
        let (stop, stopped) = signal::channel(false);
        let serve = tokio::spawn(http::serve(listener, state.clone(), stopped.clone()));
        let gc = tokio::spawn(gc::run(state.clone(), stopped));
        Ok(Self {
            addr,
            state,
            stop,
            tasks: vec![serve, gc],
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state, for installing CRDs or inspecting objects from tests.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Install (or replace) a CRD given as JSON, exactly as `kubectl apply` of it would.
    pub fn install_crd(&self, crd: serde_json::Value) -> Result<(), ApiError> {
        self.state.install_crd(crd)
    }

    /// A kubeconfig pointing at this server (context `testbed`, namespace `default`), with
    /// the admin's token.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url())
    }

    /// A token for the ServiceAccount `namespace/name` (user
    /// `system:serviceaccount:<namespace>:<name>`), valid for 24 hours or until the
    /// ServiceAccount is deleted. The namespace and the ServiceAccount are created when
    /// missing; what the token may do is up to the RBAC objects stored.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        let mut inner = self.state.lock();
        token::ensure_service_account(&mut inner, namespace, name)?;
        token::mint(&mut inner, namespace, name, chrono::Duration::hours(24)).map(|(t, _)| t)
    }

    /// A kubeconfig for a fresh token of the ServiceAccount `namespace/name` (see
    /// [`KubeServer::service_account_token`]); its default namespace is the ServiceAccount's.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, ApiError> {
        let token = self.service_account_token(namespace, name)?;
        Ok(kubeconfig::render_token(
            &self.url(),
            &service_account_user(namespace, name),
            &token,
            namespace,
        ))
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Stop accepting, close open connections and watches, and wait for the tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn install_dir(state: &State, dir: &Path) -> Result<(), StartError> {
    let read_err = |source| StartError::ReadCrd {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| StartError::ReadCrd {
            path: path.clone(),
            source,
        })?;
        let docs = crd::parse_documents(&text).map_err(|message| StartError::ParseCrd {
            path: path.clone(),
            message,
        })?;
        for doc in docs {
            if doc.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                continue;
            }
            state.install_crd(doc).map_err(|e| StartError::RefusedCrd {
                path: path.clone(),
                message: e.message,
            })?;
        }
    }
    Ok(())
}
