//! Objects as the caches keep them: each one's JSON, compressed against typical objects of its
//! kind, beside the name and namespace the cache finds it by.
//!
//! A cached SenderIdentity was about 3.5 KB of heap in 46 allocations (its conditions, DNS
//! records and metadata each a string of its own); packed it is one allocation of a few
//! hundred bytes: most of an object's JSON (field names, condition types and reasons, the
//! usual messages, the records' shapes) is found in the typical objects, so what is stored is
//! mostly what differs (names, uid, DKIM tokens, times). Readers unpack a copy
//! ([`Packed::unpack`]), which takes microseconds; the caches are read per reconcile, not per
//! byte. Packing is exact: an object unpacks to what was packed (`tests`).

use kube::Resource;
use kube::api::ObjectMeta;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::reflector::ObjectRef;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::sync::LazyLock;

use crate::controller::recheck::{Recorded, recorded};
use crate::crd::{EmailSettings, SenderIdentity};

/// A kind the caches keep packed, with typical objects of it to compress against.
pub trait Packable: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone {
    /// What a reader of every cached object needs often, kept unpacked beside each.
    type Summary: Clone + Default + Send + Sync + 'static;

    /// The compression dictionary: the typical objects, each as this process serializes it
    /// (the same field order and spelling as the objects it packs).
    fn dictionary() -> &'static [u8];

    /// The object's summary.
    fn summarize(&self) -> Self::Summary;
}

/// The typical objects of a kind (a JSON array, kept readable in the source tree) as one
/// dictionary: each object re-serialized the way [`Packed::pack`] serializes.
fn dictionary_of<K: Packable>(typical: &str) -> Vec<u8> {
    let objects: Vec<K> = serde_json::from_str(typical).expect("the typical objects parse");
    objects
        .iter()
        .flat_map(|o| serde_json::to_vec(o).expect("an object serializes"))
        .collect()
}

static SENDER_IDENTITIES: LazyLock<Vec<u8>> = LazyLock::new(|| {
    dictionary_of::<SenderIdentity>(include_str!("packed/sender-identities.json"))
});
static EMAIL_SETTINGS: LazyLock<Vec<u8>> =
    LazyLock::new(|| dictionary_of::<EmailSettings>(include_str!("packed/email-settings.json")));

/// The bulk re-check reads every identity's SES location and status each round.
impl Packable for SenderIdentity {
    type Summary = Option<Recorded>;

    fn dictionary() -> &'static [u8] {
        &SENDER_IDENTITIES
    }

    fn summarize(&self) -> Option<Recorded> {
        recorded(self)
    }
}

impl Packable for EmailSettings {
    type Summary = ();

    fn dictionary() -> &'static [u8] {
        &EMAIL_SETTINGS
    }

    fn summarize(&self) {}
}

/// One cached object of kind `K`.
pub struct Packed<K: Packable> {
    /// Its name and namespace (what the cache is keyed by); nothing else.
    meta: ObjectMeta,
    body: Body,
    summary: K::Summary,
}

impl<K: Packable> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            body: self.body.clone(),
            summary: self.summary.clone(),
        }
    }
}

#[derive(Clone)]
enum Body {
    /// The object's JSON, compressed against its kind's dictionary (its length first).
    Json(Box<[u8]>),
    /// An object that could not be read as `K` (see [`DeserializeGuard`]), kept as it came.
    Invalid(Box<InvalidObject>),
}

impl<K: Packable> Packed<K> {
    /// `obj`, packed.
    pub fn pack(obj: &K) -> Self {
        let json = serde_json::to_vec(obj).expect("a Kubernetes object serializes");
        let bytes = lz4_flex::block::compress_prepend_size_with_dict(&json, K::dictionary());
        Self::new(
            obj.meta(),
            Body::Json(bytes.into_boxed_slice()),
            obj.summarize(),
        )
    }

    /// A guarded object (a malformed one stays as it came), packed.
    pub fn pack_guard(guard: &DeserializeGuard<K>) -> Self {
        match &guard.0 {
            Ok(obj) => Self::pack(obj),
            Err(invalid) => Self::new(
                &invalid.metadata,
                Body::Invalid(Box::new(invalid.clone())),
                K::Summary::default(),
            ),
        }
    }

    fn new(meta: &ObjectMeta, body: Body, summary: K::Summary) -> Self {
        Self {
            meta: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                ..ObjectMeta::default()
            },
            body,
            summary,
        }
    }

    /// The object's [`Packable::Summary`].
    pub fn summary(&self) -> &K::Summary {
        &self.summary
    }

    /// A copy of the object, or what kept it from being read as `K`.
    pub fn unpack(&self) -> DeserializeGuard<K> {
        DeserializeGuard(match &self.body {
            Body::Json(bytes) => Ok(unpack_json(bytes)),
            Body::Invalid(invalid) => Err((**invalid).clone()),
        })
    }

    /// A copy of the object when it is well-formed.
    pub fn get(&self) -> Option<K> {
        match &self.body {
            Body::Json(bytes) => Some(unpack_json(bytes)),
            Body::Invalid(_) => None,
        }
    }

    /// Whether the object was read as `K` (a malformed one was not).
    pub fn is_valid(&self) -> bool {
        matches!(self.body, Body::Json(_))
    }

    /// How many bytes the packed object takes (its JSON compressed).
    pub fn packed_len(&self) -> usize {
        match &self.body {
            Body::Json(bytes) => bytes.len(),
            Body::Invalid(_) => 0,
        }
    }
}

/// The cache key of `obj` (its namespace and name only: no uid or resourceVersion).
pub fn cache_ref<K: Packable>(obj: &impl Resource) -> ObjectRef<Packed<K>> {
    let name = obj.meta().name.as_deref().unwrap_or_default();
    match obj.meta().namespace.as_deref() {
        Some(ns) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(name),
    }
}

/// What [`Packed::pack`] stored: this process wrote it, so it reads back.
fn unpack_json<K: Packable>(bytes: &[u8]) -> K {
    let json = lz4_flex::block::decompress_size_prepended_with_dict(bytes, K::dictionary())
        .expect("the process's own packing decompresses");
    serde_json::from_slice(&json).expect("the process's own serialization parses")
}

impl<K: Packable> std::fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .finish_non_exhaustive()
    }
}

impl<K: Packable> Resource for Packed<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Read as the object it packs (the controller runtime asks kinds to be readable).
impl<'de, K: Packable> serde::Deserialize<'de> for Packed<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DeserializeGuard::<K>::deserialize(d).map(|g| Self::pack_guard(&g))
    }
}

#[cfg(test)]
mod tests;
