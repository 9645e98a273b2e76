//! A namespace index over a reflector cache. A reconcile and the watch mappers need the objects
//! of one namespace; `Store::state()` copies the whole cluster's, which made each of them cost
//! O(cluster) and a convergence O(cluster²). The index is fed by the same watch events as the
//! cache, so it names what the cache holds, and lookups go through the cache itself.

use super::memory::{Change, Relisted, key_of};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Sorted names per namespace. A sorted `Vec` rather than a B-tree: most namespaces hold a
/// few objects, and a B-tree node costs about 540 bytes however few it holds.
type Names = HashMap<String, Vec<String>>;

/// The names of the cached objects of each namespace.
#[derive(Clone, Default)]
pub struct NamespaceIndex(Arc<Mutex<Relisted<Names>>>);

fn update<K: Resource>(names: &mut Names, change: Change<'_, K>) {
    match change {
        Change::Present(obj) => {
            let (ns, name) = key_of(obj);
            let set = names.entry(ns).or_default();
            if let Err(at) = set.binary_search(&name) {
                set.insert(at, name);
            }
        }
        Change::Gone(obj) => {
            let (ns, name) = key_of(obj);
            if let Some(set) = names.get_mut(&ns) {
                if let Ok(at) = set.binary_search(&name) {
                    set.remove(at);
                }
                if set.is_empty() {
                    names.remove(&ns);
                }
            }
        }
    }
}

impl NamespaceIndex {
    /// Applies one watch event (the same stream the cache reflects).
    pub fn observe<K: Resource>(&self, event: &watcher::Event<K>) {
        if let Ok(mut names) = self.0.lock() {
            names.on_event(event, update);
        }
    }

    /// A stream inspector that feeds the index.
    pub fn feed<K: Resource>(
        &self,
    ) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
        let index = self.clone();
        move |event| {
            if let Ok(event) = event {
                index.observe(event);
            }
        }
    }

    /// The names cached in `namespace`.
    pub fn names(&self, namespace: &str) -> Vec<String> {
        self.0
            .lock()
            .ok()
            .and_then(|names| Some(names.live().get(namespace)?.clone()))
            .unwrap_or_default()
    }

    /// The cached objects of `namespace`.
    pub fn objects<K>(&self, store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        self.names(namespace)
            .iter()
            .filter_map(|name| store.get(&ObjectRef::new(name).within(namespace)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::memory::tests::config_map as cm;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn follows_applies_and_deletes_per_namespace() {
        let index = NamespaceIndex::default();
        index.observe(&watcher::Event::Apply(cm("a", "x")));
        index.observe(&watcher::Event::Apply(cm("a", "y")));
        index.observe(&watcher::Event::Apply(cm("b", "x")));
        index.observe(&watcher::Event::Apply(cm("a", "x")));
        assert_eq!(index.names("a"), ["x", "y"]);
        assert_eq!(index.names("b"), ["x"]);
        index.observe(&watcher::Event::Delete(cm("a", "x")));
        assert_eq!(index.names("a"), ["y"]);
        assert!(index.names("c").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_at_its_end() {
        let index = NamespaceIndex::default();
        index.observe(&watcher::Event::Apply(cm("a", "gone")));
        index.observe(&watcher::Event::<ConfigMap>::Init);
        index.observe(&watcher::Event::InitApply(cm("a", "kept")));
        // Until the re-list completes the index still names what the cache holds.
        assert_eq!(index.names("a"), ["gone"]);
        index.observe(&watcher::Event::<ConfigMap>::InitDone);
        assert_eq!(index.names("a"), ["kept"]);
    }

    #[test]
    fn objects_come_from_the_cache() {
        let (store, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        let index = NamespaceIndex::default();
        for event in [
            watcher::Event::Apply(cm("a", "x")),
            watcher::Event::Apply(cm("a", "y")),
            watcher::Event::Apply(cm("b", "z")),
        ] {
            writer.apply_watcher_event(&event);
            index.observe(&event);
        }
        // A name the cache no longer holds (its deletion not yet seen here) is skipped.
        writer.apply_watcher_event(&watcher::Event::Delete(cm("a", "y")));
        let names: Vec<String> = index
            .objects(&store, "a")
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["x"]);
    }
}
