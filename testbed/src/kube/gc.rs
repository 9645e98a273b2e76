//! Background work the controller-manager does in a real cluster:
//!
//! * owner-reference garbage collection (background propagation): an object all of whose
//!   owners are gone (by uid) is deleted, honouring its own finalizers;
//! * namespace termination: a namespace marked for deletion has its contents deleted and
//!   goes away once nothing is left in it.
//!
//! Woken after every write; each pass repeats until nothing more changes.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::watch as signal;

use super::delete;
use super::meta;
use super::resources::TypeKey;
use super::state::{Inner, State};
use super::write::WriteOpts;

pub async fn run(state: Arc<State>, mut stop: signal::Receiver<bool>) {
    let wakeup = state.gc_wakeup.clone();
    loop {
        tokio::select! {
            _ = wakeup.notified() => {}
            _ = stop.changed() => return,
        }
        let mut inner = state.lock();
        for _ in 0..100 {
            if !pass(&mut inner) {
                break;
            }
        }
    }
}

/// One collection pass; true when it changed something.
pub fn pass(inner: &mut Inner) -> bool {
    let uids: HashSet<String> = inner
        .store
        .all()
        .map(|(_, v)| meta::uid(v).to_string())
        .collect();
    let opts = WriteOpts {
        manager: "garbage-collector".into(),
        ..WriteOpts::system()
    };
    let mut doomed: Vec<(TypeKey, String, String)> = Vec::new();
    for (key, obj) in inner.store.all() {
        let owners = meta::owner_uids(obj);
        if !owners.is_empty() && owners.iter().all(|u| !uids.contains(u)) && !meta::is_deleting(obj)
        {
            doomed.push((
                key.clone(),
                meta::namespace(obj).to_string(),
                meta::name(obj).to_string(),
            ));
        }
    }
    let ns_key = TypeKey {
        group: String::new(),
        plural: "namespaces".into(),
    };
    let terminating: Vec<String> = inner
        .store
        .list(&ns_key, None)
        .filter(|n| meta::is_deleting(n))
        .map(|n| meta::name(n).to_string())
        .collect();
    let mut finished_namespaces = Vec::new();
    for ns in &terminating {
        let contents: Vec<(TypeKey, String, bool)> = inner
            .store
            .all()
            .filter(|(_, v)| meta::namespace(v) == ns)
            .map(|(k, v)| (k.clone(), meta::name(v).to_string(), meta::is_deleting(v)))
            .collect();
        if contents.is_empty() {
            finished_namespaces.push(ns.clone());
        }
        for (key, name, deleting) in contents {
            if !deleting {
                doomed.push((key, ns.clone(), name));
            }
        }
    }
    let mut changed = false;
    for (key, ns, name) in doomed {
        if let Some(rt) = inner.any_version(&key)
            && delete::delete(inner, &rt, &ns, &name, &json!({}), &opts).is_ok()
        {
            changed = true;
        }
    }
    for ns in finished_namespaces {
        if inner.store.remove(&ns_key, "", &ns).is_some() {
            changed = true;
        }
    }
    changed
}
