//! What the operator watches: the whole cluster, or (`--watch-namespace`) a list of namespaces
//! — then every watch is one watch per namespace, merged into one stream that looks like a
//! single watch to what consumes it (caches, indexes, triggers), and nothing is listed or
//! watched at the cluster scope.

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The namespaces watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Namespaces(Vec<String>),
}

impl Scope {
    /// `--watch-namespace` as given: none means the whole cluster.
    pub fn of(namespaces: &[String]) -> Self {
        if namespaces.is_empty() {
            Self::Cluster
        } else {
            let mut ns = namespaces.to_vec();
            ns.sort();
            ns.dedup();
            Self::Namespaces(ns)
        }
    }

    /// The APIs to watch `K` through: one for the cluster, or one per namespace.
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    {
        match self {
            Self::Cluster => vec![Api::all(client.clone())],
            Self::Namespaces(ns) => ns
                .iter()
                .map(|n| Api::namespaced(client.clone(), n))
                .collect(),
        }
    }
}

type Events<K> = Result<watcher::Event<K>, watcher::Error>;

/// Watches through `apis` as one watch (with backoff, and objects without `managedFields`:
/// nothing reads them, and they are a large part of every object).
pub fn watch<K>(apis: Vec<Api<K>>, config: watcher::Config) -> BoxStream<'static, Events<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watch_each(apis.into_iter().map(|a| (a, config.clone())).collect())
}

/// [`watch`] with a configuration for each API.
pub fn watch_each<K>(apis: Vec<(Api<K>, watcher::Config)>) -> BoxStream<'static, Events<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let streams: Vec<BoxStream<'static, Events<K>>> = apis
        .into_iter()
        .map(|(api, config)| watcher(api, config).default_backoff().modify(trim).boxed())
        .collect();
    merged(streams)
}

/// The annotation `kubectl apply` (client-side, as Argo CD does by default) keeps a whole copy
/// of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What no controller reads is not cached: the managed fields, and the copy of the object
/// `kubectl apply` keeps in an annotation (it would double what the caches hold).
pub fn trim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Several watches as one. Applies and deletes pass through. Listings are held back until
/// every watch has listed once, then given as one listing of everything; a later re-list of one
/// watch is given as a listing of everything too (the others as last seen) — so a consumer
/// that replaces its state at the end of a listing (kube's reflector) keeps the other
/// namespaces' objects. One watch passes through unchanged.
pub fn merged<K>(mut streams: Vec<BoxStream<'static, Events<K>>>) -> BoxStream<'static, Events<K>>
where
    K: Resource + Clone + Send + 'static,
{
    if streams.len() == 1 {
        return streams.remove(0);
    }
    let mut merge = Merge::new(streams.len());
    let tagged = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.map(move |e| (i, e)).boxed());
    futures::stream::select_all(tagged)
        .flat_map(move |(i, e)| futures::stream::iter(merge.on(i, e)))
        .boxed()
}

type Key = (String, String);

fn key<K: Resource>(obj: &K) -> Key {
    (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    )
}

/// The state behind [`merged`].
struct Merge<K> {
    /// Each watch's objects as last seen.
    known: Vec<BTreeMap<Key, K>>,
    /// Each watch's listing in progress.
    listing: Vec<Option<BTreeMap<Key, K>>>,
    /// Each watch has listed once.
    listed: Vec<bool>,
    /// The first merged listing was given.
    started: bool,
}

impl<K: Resource + Clone> Merge<K> {
    fn new(n: usize) -> Self {
        Self {
            known: (0..n).map(|_| BTreeMap::new()).collect(),
            listing: (0..n).map(|_| None).collect(),
            listed: vec![false; n],
            started: false,
        }
    }

    fn on(&mut self, i: usize, event: Events<K>) -> Vec<Events<K>> {
        let event = match event {
            Ok(e) => e,
            Err(e) => return vec![Err(e)],
        };
        match event {
            watcher::Event::Apply(obj) => {
                self.known[i].insert(key(&obj), obj.clone());
                self.pass(watcher::Event::Apply(obj))
            }
            watcher::Event::Delete(obj) => {
                self.known[i].remove(&key(&obj));
                self.pass(watcher::Event::Delete(obj))
            }
            watcher::Event::Init => {
                self.listing[i] = Some(BTreeMap::new());
                vec![]
            }
            watcher::Event::InitApply(obj) => {
                self.listing[i]
                    .get_or_insert_default()
                    .insert(key(&obj), obj);
                vec![]
            }
            watcher::Event::InitDone => {
                self.known[i] = self.listing[i].take().unwrap_or_default();
                self.listed[i] = true;
                if !self.listed.iter().all(|l| *l) {
                    return vec![];
                }
                self.started = true;
                let mut out = vec![Ok(watcher::Event::Init)];
                out.extend(
                    self.known
                        .iter()
                        .flat_map(|m| m.values().cloned())
                        .map(|o| Ok(watcher::Event::InitApply(o))),
                );
                out.push(Ok(watcher::Event::InitDone));
                out
            }
        }
    }

    /// Passes an apply or delete once the first merged listing was given (before, the listing
    /// will hold it).
    fn pass(&self, event: watcher::Event<K>) -> Vec<Events<K>> {
        if self.started {
            vec![Ok(event)]
        } else {
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    #[test]
    fn the_cache_keeps_neither_managed_fields_nor_kubectls_copy_of_the_object() {
        let mut obj: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "a",
                "annotations": {
                    LAST_APPLIED: "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}",
                    "email.ops.dev/adopt": "true"
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            }
        }))
        .expect("object");
        trim(&mut obj);
        assert_eq!(obj.metadata.managed_fields, None);
        let kept: Vec<&String> = obj.annotations().keys().collect();
        assert_eq!(
            kept,
            ["email.ops.dev/adopt"],
            "annotations the operator reads stay"
        );
    }
    use crate::controller::memory::tests::config_map as cm;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    /// Feeds (watch, event) pairs through a merge into a reflector; the cached names.
    fn run(events: Vec<(usize, watcher::Event<ConfigMap>)>) -> (Vec<String>, usize) {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let mut merge = Merge::new(2);
        let mut listings = 0;
        for (i, e) in events {
            for out in merge.on(i, Ok(e)) {
                let out = out.expect("no error");
                if matches!(out, watcher::Event::InitDone) {
                    listings += 1;
                }
                writer.apply_watcher_event(&out);
            }
        }
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.metadata.namespace.clone().unwrap_or_default(),
                    c.metadata.name.clone().unwrap_or_default()
                )
            })
            .collect();
        names.sort();
        (names, listings)
    }

    #[test]
    fn one_listing_once_every_namespace_has_listed() {
        use watcher::Event::*;
        let (names, listings) = run(vec![
            (0, Init),
            (0, InitApply(cm("a", "x"))),
            (0, InitDone),
            // Applied in `a` before `b` has listed: held for the first listing.
            (0, Apply(cm("a", "y"))),
            (1, Init),
            (1, InitApply(cm("b", "z"))),
            (1, InitDone),
        ]);
        assert_eq!(names, ["a/x", "a/y", "b/z"]);
        assert_eq!(listings, 1, "nothing is listed before every namespace has");
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others() {
        use watcher::Event::*;
        let (names, listings) = run(vec![
            (0, Init),
            (0, InitApply(cm("a", "x"))),
            (0, InitDone),
            (1, Init),
            (1, InitApply(cm("b", "z"))),
            (1, InitDone),
            (1, Apply(cm("b", "w"))),
            (0, Delete(cm("a", "x"))),
            // `b` re-lists: `w` was deleted while its watch was down.
            (1, Init),
            (1, InitApply(cm("b", "z"))),
            (1, InitDone),
            (0, Apply(cm("a", "v"))),
        ]);
        assert_eq!(names, ["a/v", "b/z"]);
        assert_eq!(listings, 2);
    }
}
