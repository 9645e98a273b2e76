//! WATCH: a chunked stream of newline-delimited `{"type": …, "object": …}` events.
//!
//! * no `resourceVersion` (or `"0"`): synthetic ADDED events for the current objects, then
//!   live changes; with `sendInitialEvents=true` the initial events end with a BOOKMARK
//!   annotated `k8s.io/initial-events-end`, as the streaming-list protocol expects;
//! * `resourceVersion=N`: every change after N from the kept history, then live changes;
//!   N older than the history answers an ERROR event with a `410 Expired` Status;
//! * `allowWatchBookmarks=true`: periodic BOOKMARK events carrying the revision the watch
//!   has caught up to; `timeoutSeconds` ends the stream cleanly.
//!
//! With an `Accept` asking for a Table, each event carries a one-row Table, as
//! `kubectl get -w` expects. With a selector, an object that starts/stops matching is sent as ADDED/DELETED, as the
//! watch cache does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch as signal};

use super::error::{ApiError, ApiResult};
use super::meta;
use super::resources::{ResourceType, TypeKey};
use super::selector::Selector;
use super::state::State;
use super::store::{Event, EventKind};
use super::table::{self, View};

pub struct WatchParams {
    pub namespace: Option<String>,
    pub selector: Selector,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// A Table view sends one-row Tables (`kubectl get -w`), a metadata view
    /// `PartialObjectMetadata` (kube's `metadata_watcher`).
    pub view: View,
}

/// The event's object as the client asked for it: the object, or a one-row Table.
fn render(rt: &ResourceType, p: &WatchParams, obj: &Value) -> Value {
    match &p.view {
        View::Table(include) => {
            let rv = meta::resource_version(obj).unwrap_or("").to_string();
            table::build(rt, std::slice::from_ref(obj), &rv, None, include)
        }
        View::Metadata => table::partial(obj),
        View::Full => obj.clone(),
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": kind, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        &json!({ "kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata }),
    )
}

/// What a filtered watch sees of one change, if anything.
fn project(rt: &ResourceType, p: &WatchParams, e: &Event) -> Option<Bytes> {
    let in_scope = |o: &Value| {
        p.namespace
            .as_deref()
            .is_none_or(|ns| meta::namespace(o) == ns)
            && p.selector.matches(&rt.present(o.clone()))
    };
    let now = in_scope(&e.object);
    let before = e.prev.as_ref().is_some_and(in_scope);
    let obj = rt.present(e.object.clone());
    let kind = match (e.kind, before, now) {
        (EventKind::Deleted, true, _) => "DELETED",
        (EventKind::Deleted, false, _) => return None,
        (_, true, true) => e.kind.as_str(),
        (EventKind::Modified, false, true) | (EventKind::Added, _, true) => "ADDED",
        (_, true, false) => "DELETED",
        (_, false, false) => return None,
    };
    Some(line(kind, &render(rt, p, &obj)))
}

/// Start a watch; the receiver yields the stream's chunks and ends when the watch does.
pub fn start(
    state: &Arc<State>,
    rt: &ResourceType,
    params: WatchParams,
    mut stop: signal::Receiver<bool>,
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let key: TypeKey = rt.key();
    let mut initial: Vec<Bytes> = Vec::new();
    let (mut events, start_rv) = {
        let inner = state.lock();
        let requested = params
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0");
        let start_rv = match requested {
            None => {
                for obj in inner
                    .store
                    .list(&key, params.namespace.as_deref())
                    .map(|o| rt.present(o.clone()))
                    .filter(|o| params.selector.matches(o))
                {
                    initial.push(line("ADDED", &render(rt, &params, &obj)));
                }
                let rv = inner.store.revision();
                if params.send_initial_events && params.bookmarks {
                    initial.push(bookmark(rt, rv, true));
                }
                rv
            }
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                if rv < inner.store.compacted() {
                    let gone = ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        inner.store.compacted()
                    ));
                    initial.push(line("ERROR", &gone.status()));
                    let _ = tx.try_send(initial.remove(0));
                    return Ok(rx);
                }
                for e in inner.store.since(rv).filter(|e| e.key == key) {
                    initial.extend(project(rt, &params, e));
                }
                if params.send_initial_events && params.bookmarks {
                    initial.push(bookmark(rt, inner.store.revision(), true));
                }
                inner.store.revision().max(rv)
            }
        };
        (inner.store.subscribe(), start_rv)
    };
    let rt = rt.clone();
    let interval = state.bookmark_interval;
    let timeout = match (params.timeout, state.watch_drop_every) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    tokio::spawn(async move {
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let mut progress = start_rv;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(e) => {
                        if e.rv <= progress {
                            continue;
                        }
                        progress = e.rv;
                        if e.key != key {
                            continue;
                        }
                        if let Some(chunk) = project(&rt, &params, &e)
                            && tx.send(chunk).await.is_err()
                        {
                            return;
                        }
                    }
                    // Fell behind or the server is going away: end the watch; the client
                    // resumes from its last revision.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if params.bookmarks => {
                    if tx.send(bookmark(&rt, progress, false)).await.is_err() {
                        return;
                    }
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
                _ = stop.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}
