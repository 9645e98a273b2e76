//! The Secrets the EmailSettings controller reads, kept between its reconciles.
//!
//! Every reconcile reads the output Secret and the Secrets its delivery method names; at
//! thousands of EmailSettings re-evaluated as their identities converge, those reads were most
//! of the operator's Kubernetes requests. The metadata watch of Secrets (which already wakes
//! the EmailSettings a Secret concerns) also says which version of each Secret is current, so
//! a copy read at that version is answered from memory and anything else is read again.
//!
//! Only Secrets the controller asked for are kept, and a deleted one is dropped. A Secret shown
//! at another version is read again. Absence is answered from the watch only where it is
//! expected and harmless ([`SecretCache::peek`]: the output Secret before its first
//! publication, confirmed by a read before it is written); an input Secret the watch has not
//! shown is read, so an EmailSettings applied together with its Secret does not see it missing
//! for the moment the watch lags.

use super::memory::{Change, Relisted, key_of};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher;
use kube::{Client, Resource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Key = (String, String);
type Versions = HashMap<Key, String>;

/// Secrets read by the EmailSettings controller, valid while their version is current.
#[derive(Default)]
pub struct SecretCache(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    /// The current resourceVersion of every Secret, from the metadata watch.
    versions: Relisted<Versions>,
    /// `versions` holds a complete listing.
    synced: bool,
    /// The Secrets read, as read.
    contents: HashMap<Key, Arc<Secret>>,
}

fn version_of<K: Resource>(obj: &K) -> String {
    obj.meta().resource_version.clone().unwrap_or_default()
}

impl SecretCache {
    /// Applies one event of the Secret metadata watch.
    pub fn observe(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let Ok(mut inner) = self.0.lock() else {
            return;
        };
        let Inner {
            versions,
            synced,
            contents,
        } = &mut *inner;
        let relisted = versions.on_event(event, |v, change| match change {
            Change::Present(meta) => {
                v.insert(key_of(meta), version_of(meta));
            }
            Change::Gone(meta) => {
                let key = key_of(meta);
                v.remove(&key);
                contents.remove(&key);
            }
        });
        if relisted {
            *synced = true;
            // What was deleted while the watch was down is not listed again.
            contents.retain(|key, _| versions.live().contains_key(key));
        }
    }

    /// A stream inspector that feeds the cache.
    pub fn feed(
        self: &Arc<Self>,
    ) -> impl FnMut(&Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>) + use<>
    {
        let cache = self.clone();
        move |event| {
            if let Ok(event) = event {
                cache.observe(event);
            }
        }
    }

    /// The kept copy, if it is of the version the watch last showed.
    fn current(&self, key: &Key) -> Option<Arc<Secret>> {
        let inner = self.0.lock().ok()?;
        let version = inner.versions.live().get(key)?;
        inner
            .contents
            .get(key)
            .filter(|s| s.metadata.resource_version.as_ref() == Some(version))
            .cloned()
    }

    /// Whether the watch, complete, shows no such Secret.
    fn absent(&self, key: &Key) -> bool {
        self.0
            .lock()
            .is_ok_and(|inner| inner.synced && !inner.versions.live().contains_key(key))
    }

    /// Keeps a Secret as read or written.
    pub fn remember(&self, secret: &Secret) {
        if let Ok(mut inner) = self.0.lock() {
            inner
                .contents
                .insert(key_of(secret), Arc::new(secret.clone()));
        }
    }

    /// The Secret `namespace/name`: the kept copy when it is current, else read from the API.
    pub async fn get(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(kept) = self.current(&key) {
            return Ok(Some(kept));
        }
        let read = Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?;
        if let Some(s) = &read {
            self.remember(s);
        }
        Ok(read.map(Arc::new))
    }

    /// Like [`SecretCache::get`], but a Secret the (complete) watch does not show is taken to
    /// be absent without a read. For what the operator itself creates; confirm with `get`
    /// before acting on the absence.
    pub async fn peek(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        if self.absent(&(namespace.to_string(), name.to_string())) {
            return Ok(None);
        }
        self.get(client, namespace, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn meta(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                namespace: Some("billing".into()),
                name: Some(name.into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            _phantom: Default::default(),
        }
    }

    fn secret(name: &str, version: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some("billing".into()),
                name: Some(name.into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn key(name: &str) -> Key {
        ("billing".into(), name.into())
    }

    #[test]
    fn a_copy_is_used_only_while_the_watch_shows_its_version() {
        let cache = SecretCache::default();
        cache.remember(&secret("smtp", "5"));
        assert!(
            cache.current(&key("smtp")).is_none(),
            "the watch has not shown it"
        );
        cache.observe(&watcher::Event::Apply(meta("smtp", "5")));
        assert!(cache.current(&key("smtp")).is_some());

        // Changed: read again (until the new version is kept).
        cache.observe(&watcher::Event::Apply(meta("smtp", "6")));
        assert!(cache.current(&key("smtp")).is_none());
        cache.remember(&secret("smtp", "6"));
        assert!(cache.current(&key("smtp")).is_some());

        // Deleted: gone, and a later copy of the same name needs the watch again.
        cache.observe(&watcher::Event::Delete(meta("smtp", "6")));
        assert!(cache.current(&key("smtp")).is_none());
        cache.observe(&watcher::Event::Apply(meta("smtp", "9")));
        assert!(cache.current(&key("smtp")).is_none(), "nothing kept");
    }

    #[test]
    fn a_relist_replaces_the_versions_at_its_end_and_drops_what_was_deleted_meanwhile() {
        let cache = SecretCache::default();
        for (name, v) in [("smtp", "5"), ("relay", "7")] {
            cache.observe(&watcher::Event::Apply(meta(name, v)));
            cache.remember(&secret(name, v));
        }
        assert!(
            !cache.absent(&key("other")),
            "not synced: absence is not known"
        );
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitApply(meta("smtp", "8")));
        assert!(
            cache.current(&key("smtp")).is_some(),
            "the old listing serves until the new one is complete"
        );
        cache.observe(&watcher::Event::InitDone);
        assert!(cache.current(&key("smtp")).is_none(), "changed while down");
        assert!(cache.current(&key("relay")).is_none(), "deleted while down");
        assert!(
            !cache
                .0
                .lock()
                .expect("lock")
                .contents
                .contains_key(&key("relay"))
        );
        assert!(
            cache.absent(&key("relay")),
            "a complete listing knows what is not there"
        );
        assert!(!cache.absent(&key("smtp")));
    }
}
