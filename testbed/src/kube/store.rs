//! The object store: every object of every type, one global `resourceVersion` counter, and
//! a bounded history of change events that watches replay from.
//!
//! Like etcd behind kube-apiserver, each write gets the next revision; a watch may resume
//! from any revision still in the history and gets `410 Gone` for anything older. Live
//! events go out on a broadcast channel; a watcher that falls too far behind is dropped
//! and resumes from its last revision, exactly as a client would after a broken watch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::meta;
use super::resources::TypeKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, with the object after it (for DELETED: the last state, at the deletion's
/// revision) and before it (for selector transitions on filtered watches).
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub key: TypeKey,
    pub kind: EventKind,
    pub object: Value,
    pub prev: Option<Value>,
}

type ObjectKey = (String, String);

pub struct Store {
    rv: u64,
    objects: HashMap<TypeKey, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Every revision <= `compacted` has left the history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 1,
            tx,
        }
    }

    /// The current (latest) revision.
    pub fn revision(&self) -> u64 {
        self.rv
    }

    /// Oldest revision a watch may still resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn get(&self, key: &TypeKey, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of one type, sorted by namespace then name; `namespace` None = all.
    pub fn list<'a>(
        &'a self,
        key: &TypeKey,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v)
    }

    /// Every object of every type (for garbage collection).
    pub fn all(&self) -> impl Iterator<Item = (&TypeKey, &Value)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k, v)))
    }

    /// Store `object` (new or replacing), stamping the next `resourceVersion`; returns the
    /// stored object.
    pub fn put(&mut self, key: &TypeKey, mut object: Value) -> Value {
        self.rv += 1;
        meta::meta_mut(&mut object)
            .insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let okey = (
            meta::namespace(&object).to_string(),
            meta::name(&object).to_string(),
        );
        let prev = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert(okey, object.clone());
        let kind = if prev.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(key, kind, object.clone(), prev);
        object
    }

    /// Remove an object; the DELETED event carries it at a fresh revision.
    pub fn remove(&mut self, key: &TypeKey, namespace: &str, name: &str) -> Option<Value> {
        let mut object = self
            .objects
            .get_mut(key)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        self.rv += 1;
        let prev = object.clone();
        meta::meta_mut(&mut object)
            .insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        self.record(key, EventKind::Deleted, object.clone(), Some(prev));
        Some(object)
    }

    /// Drop every object of a type (a CRD was deleted), emitting DELETED events.
    pub fn remove_all(&mut self, key: &TypeKey) {
        let keys: Vec<ObjectKey> = self
            .objects
            .get(key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in keys {
            self.remove(key, &ns, &name);
        }
    }

    fn record(&mut self, key: &TypeKey, kind: EventKind, object: Value, prev: Option<Value>) {
        let event = Arc::new(Event {
            rv: self.rv,
            key: key.clone(),
            kind,
            object,
            prev,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Events after `rv` still in the history (caller checked `rv >= compacted`).
    pub fn since(&self, rv: u64) -> impl Iterator<Item = &Arc<Event>> {
        self.history.iter().filter(move |e| e.rv > rv)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
