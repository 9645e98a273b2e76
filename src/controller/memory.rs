//! What the controllers remember between events, in three shapes shared by every user:
//!
//! * [`Relisted`] — a map kept in step with a watch: events change it, and a re-list (`Init`,
//!   `InitApply`…, `InitDone`) builds a fresh one that replaces it at its end, as kube's
//!   reflector buffers its cache (so what was deleted while the watch was down goes too).
//! * [`Seen`] — the last value seen of each object, to tell a change from a repeat; a re-list
//!   forgets everything (an object listed again counts as new).
//! * [`PerObject`] — what this process learned of each object by reconciling it (the status it
//!   wrote, its last connection test, its last SES read), dropped when the watch reports the
//!   object deleted (see `watches`), so it does not grow with every object ever seen.

use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::Mutex;

/// A map kept in step with a watch.
#[derive(Debug, Default)]
pub struct Relisted<M> {
    live: M,
    relisting: Option<M>,
}

/// How one watch event changes a [`Relisted`] map.
pub enum Change<'a, K> {
    /// The object is there (applied, or listed by a re-list).
    Present(&'a K),
    /// The object is gone.
    Gone(&'a K),
}

impl<M: Default> Relisted<M> {
    /// The map as the watch shows it now.
    pub fn live(&self) -> &M {
        &self.live
    }

    pub fn live_mut(&mut self) -> &mut M {
        &mut self.live
    }

    /// Applies one event through `update` (to the live map, or to the re-list being built).
    /// Returns true when a re-list has just completed and replaced the map.
    pub fn on_event<K>(
        &mut self,
        event: &watcher::Event<K>,
        mut update: impl FnMut(&mut M, Change<'_, K>),
    ) -> bool {
        match event {
            watcher::Event::Apply(obj) => update(&mut self.live, Change::Present(obj)),
            watcher::Event::Delete(obj) => update(&mut self.live, Change::Gone(obj)),
            watcher::Event::Init => self.relisting = Some(M::default()),
            watcher::Event::InitApply(obj) => {
                update(self.relisting.get_or_insert_default(), Change::Present(obj))
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = self.relisting.take() {
                    self.live = fresh;
                    return true;
                }
            }
        }
        false
    }
}

/// The last value seen of each object, by uid ([`uid_of`]).
#[derive(Debug)]
pub struct Seen<V> {
    values: HashMap<Uid, V>,
}

impl<V> Default for Seen<V> {
    fn default() -> Self {
        Self {
            values: HashMap::new(),
        }
    }
}

impl<V: PartialEq> Seen<V> {
    /// Records `value` for the object; true when it is new or differs from the last one.
    pub fn changed(&mut self, key: Uid, value: V) -> bool {
        match self.values.get(&key) {
            Some(before) if *before == value => false,
            _ => {
                self.values.insert(key, value);
                true
            }
        }
    }

    /// The last value seen, if any.
    pub fn get(&self, key: &Uid) -> Option<&V> {
        self.values.get(key)
    }

    /// Forgets a deleted object.
    pub fn forget(&mut self, key: &Uid) {
        self.values.remove(key);
    }

    /// Forgets everything (a re-list: what is listed again counts as new).
    pub fn clear(&mut self) {
        self.values.clear();
    }
}

/// What this process learned of each object, by uid.
#[derive(Debug)]
pub struct PerObject<V>(Mutex<HashMap<Uid, V>>);

/// An object's uid as a map key: the API server's uids are UUIDs, held as their 16 bytes
/// rather than a 36-character string on the heap (a map per memory, an entry per object);
/// anything else is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uid {
    Uuid(u128),
    Other(Box<str>),
}

impl Uid {
    pub fn of(uid: &str) -> Self {
        Self::uuid(uid).map_or_else(|| Self::Other(uid.into()), Self::Uuid)
    }

    /// The 128 bits of a canonical UUID (lower-case hex, dashes after 8, 12, 16 and 20
    /// digits), read without allocating: this runs on every watch event and reconcile.
    fn uuid(uid: &str) -> Option<u128> {
        let bytes = uid.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut n: u128 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let dash = matches!(i, 8 | 13 | 18 | 23);
            let digit = match b {
                b'-' if dash => continue,
                b'0'..=b'9' if !dash => b - b'0',
                b'a'..=b'f' if !dash => b - b'a' + 10,
                _ => return None,
            };
            n = (n << 4) | u128::from(digit);
        }
        Some(n)
    }
}

impl<V> Default for PerObject<V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> PerObject<V> {
    pub fn get(&self, uid: &str) -> Option<V> {
        self.0.lock().ok()?.get(&Uid::of(uid)).cloned()
    }

    pub fn set(&self, uid: &str, value: V) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(Uid::of(uid), value);
        }
    }

    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&Uid::of(uid));
        }
    }

    /// Forgets what is remembered of `uid` when `done` says so of it.
    pub fn forget_if(&self, uid: &str, done: impl FnOnce(&V) -> bool) {
        let uid = Uid::of(uid);
        if let Ok(mut m) = self.0.lock()
            && m.get(&uid).is_some_and(done)
        {
            m.remove(&uid);
        }
    }

    /// How many objects are remembered (for tests and gauges).
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of `obj` in [`Seen`]: its uid (an object without one, made up in a test, by its
/// namespace and name).
pub fn uid_of<K: kube::Resource>(obj: &K) -> Uid {
    let meta = obj.meta();
    match meta.uid.as_deref() {
        Some(uid) => Uid::of(uid),
        None => Uid::Other(
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            )
            .into(),
        ),
    }
}

/// A key from an object's namespace and name.
pub fn key_of<K: kube::Resource>(obj: &K) -> (String, String) {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::collections::BTreeSet;

    /// A ConfigMap `ns/name`: an object of any kind for watch-event tests.
    pub(crate) fn config_map(ns: &str, name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some(ns.into());
        c.metadata.name = Some(name.into());
        c
    }

    fn cm(name: &str) -> ConfigMap {
        config_map("", name)
    }

    fn apply(set: &mut BTreeSet<String>, change: Change<'_, ConfigMap>) {
        match change {
            Change::Present(c) => set.insert(c.metadata.name.clone().unwrap_or_default()),
            Change::Gone(c) => set.remove(c.metadata.name.as_deref().unwrap_or_default()),
        };
    }

    #[test]
    fn a_relist_replaces_the_map_only_when_complete() {
        let mut r: Relisted<BTreeSet<String>> = Relisted::default();
        r.on_event(&watcher::Event::Apply(cm("gone")), apply);
        r.on_event(&watcher::Event::Apply(cm("kept")), apply);
        r.on_event(&watcher::Event::Delete(cm("kept")), apply);
        r.on_event(&watcher::Event::Apply(cm("kept")), apply);
        assert!(!r.on_event(&watcher::Event::<ConfigMap>::Init, apply));
        r.on_event(&watcher::Event::InitApply(cm("kept")), apply);
        assert_eq!(r.live().len(), 2, "still the old view meanwhile");
        assert!(r.on_event(&watcher::Event::<ConfigMap>::InitDone, apply));
        assert_eq!(r.live().iter().collect::<Vec<_>>(), ["kept"]);
    }

    #[test]
    fn seen_tells_changes_from_repeats() {
        let mut s = Seen::default();
        let k = uid_of(&config_map("ns", "a"));
        assert!(s.changed(k.clone(), 1));
        assert!(!s.changed(k.clone(), 1));
        assert!(s.changed(k.clone(), 2));
        s.forget(&k);
        assert!(s.changed(k.clone(), 2), "new again after a deletion");
        s.clear();
        assert!(s.changed(k, 2), "new again after a re-list");
    }

    #[test]
    fn uids_are_keys_exactly() {
        let uuid = "0b1f6c3e-9d2a-4c4e-8f00-5a6b7c8d9e0f";
        assert_eq!(
            Uid::of(uuid),
            Uid::Uuid(0x0b1f6c3e_9d2a_4c4e_8f00_5a6b7c8d9e0f)
        );
        // Not canonical (upper case, no dashes, dashes elsewhere, too short): kept as written,
        // so two spellings never meet in one key.
        for other in [
            "0B1F6C3E-9D2A-4C4E-8F00-5A6B7C8D9E0F",
            "0b1f6c3e9d2a4c4e8f005a6b7c8d9e0f",
            "0b1f6c3e9-d2a-4c4e-8f00-5a6b7c8d9e0f",
            "uid-1",
            "",
        ] {
            assert_eq!(Uid::of(other), Uid::Other(other.into()), "{other}");
        }
        let m = PerObject::default();
        m.set(uuid, 1);
        m.set("0B1F6C3E-9D2A-4C4E-8F00-5A6B7C8D9E0F", 2);
        assert_eq!((m.get(uuid), m.len()), (Some(1), 2));
    }

    #[test]
    fn per_object_memory_is_dropped_when_forgotten() {
        let m = PerObject::default();
        m.set("uid-1", "status".to_string());
        assert_eq!(m.get("uid-1").as_deref(), Some("status"));
        m.forget("uid-1");
        assert!(m.get("uid-1").is_none() && m.is_empty());
    }
}
