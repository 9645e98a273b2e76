//! What a SenderIdentity change sets in motion beyond its own reconcile, taken from the one
//! SenderIdentity watch (no second or third watch of the same objects):
//!
//! * its siblings (same EmailSettings, same namespace) are re-evaluated when the policy's view
//!   of it changed — its spec, or its deletion, since deleting a slot holder promotes the next
//!   in line. Its status is not the policy's business, so status writes wake no sibling;
//! * its EmailSettings is re-evaluated when what the EmailSettings reads changed: the policy's
//!   view, and whether it is verified for sending and where.
//!
//! And from the EmailSettings watch that fills the EmailSettings cache ([`SettingsTriggers`]):
//! an EmailSettings that appears, changes its spec or goes away re-evaluates the
//! SenderIdentities that name it. Taken from the same stream as the cache (after the cache
//! applied the event), a woken SenderIdentity always reads the EmailSettings it was woken for;
//! a second watch could deliver the event first, and a SenderIdentity that read an older cache
//! (its EmailSettings not there yet) would be left rejected with nothing to wake it again.
//!
//! At thousands of identities each converging through several status writes, waking every
//! sibling and the EmailSettings on each write was most of the operator's work.

use super::index::NamespaceIndex;
use super::packed::Packed;
use super::{identity_ref, memory};
use crate::crd::{EmailSettings, SenderIdentity};
use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The parts of a SenderIdentity others look at, as hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// What the policy reads: the spec and whether it is being deleted.
    policy: u64,
    /// What its EmailSettings reads besides: verified for sending, and in which region.
    settings: u64,
}

fn seen(si: &SenderIdentity) -> Seen {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&si.spec)
        .unwrap_or_default()
        .hash(&mut h);
    si.metadata.deletion_timestamp.is_some().hash(&mut h);
    let policy = h.finish();
    let status = si.status.as_ref();
    status.and_then(|s| s.verified_for_sending).hash(&mut h);
    status
        .and_then(|s| s.ses.as_ref())
        .map(|l| (&l.region, &l.role_arn))
        .hash(&mut h);
    Seen {
        policy,
        settings: h.finish(),
    }
}

/// Who to wake for one changed SenderIdentity.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wake {
    siblings: bool,
    settings: bool,
}

/// Remembers what was last seen of each SenderIdentity and sends the triggers.
pub struct Triggers {
    seen: memory::Seen<Seen>,
    identities: Store<Packed<SenderIdentity>>,
    index: NamespaceIndex,
    siblings: UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
    settings: UnboundedSender<ObjectRef<Packed<EmailSettings>>>,
}

impl Triggers {
    pub fn new(
        identities: Store<Packed<SenderIdentity>>,
        index: NamespaceIndex,
        siblings: UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
        settings: UnboundedSender<ObjectRef<Packed<EmailSettings>>>,
    ) -> Self {
        Self {
            seen: memory::Seen::default(),
            identities,
            index,
            siblings,
            settings,
        }
    }

    /// Compares with what was seen last time.
    fn compare(&mut self, si: &SenderIdentity, deleted: bool) -> Wake {
        let key = memory::uid_of(si);
        let everyone = Wake {
            siblings: true,
            settings: true,
        };
        if deleted {
            self.seen.forget(&key);
            return everyone;
        }
        let now = seen(si);
        let wake = match self.seen.get(&key) {
            None => everyone,
            Some(before) => Wake {
                siblings: before.policy != now.policy,
                settings: before.settings != now.settings,
            },
        };
        self.seen.changed(key, now);
        wake
    }

    /// Applies one event of the SenderIdentity watch (after the cache has).
    pub fn observe(&mut self, event: &watcher::Event<DeserializeGuard<SenderIdentity>>) {
        let (guard, deleted) = match event {
            watcher::Event::Apply(g) | watcher::Event::InitApply(g) => (g, false),
            watcher::Event::Delete(g) => (g, true),
            // A re-list: deletions missed while the watch was down send no event, so everything
            // listed counts as seen for the first time (and wakes its siblings and settings),
            // and what is not listed again is forgotten.
            watcher::Event::Init => {
                self.seen.clear();
                return;
            }
            watcher::Event::InitDone => return,
        };
        let Ok(si) = &guard.0 else {
            return;
        };
        let wake = self.compare(si, deleted);
        let ns = si.namespace().unwrap_or_default();
        let settings = &si.spec.email_settings_ref.name;
        if wake.settings {
            let _ = self
                .settings
                .unbounded_send(ObjectRef::new(settings).within(&ns));
        }
        if wake.siblings {
            for sibling in naming(&self.identities, &self.index, &ns, settings) {
                if sibling.name != si.name_any() {
                    let _ = self.siblings.unbounded_send(sibling);
                }
            }
        }
    }
}

/// The cache keys of the well-formed SenderIdentities of `namespace` that name the
/// EmailSettings `settings`.
fn naming(
    identities: &Store<Packed<SenderIdentity>>,
    index: &NamespaceIndex,
    namespace: &str,
    settings: &str,
) -> Vec<ObjectRef<Packed<SenderIdentity>>> {
    index
        .objects(identities, namespace)
        .iter()
        .filter_map(|p| p.get())
        .filter(|si| si.spec.email_settings_ref.name == settings)
        .map(|si| identity_ref(&si))
        .collect()
}

/// Wakes the SenderIdentities that name an EmailSettings when what they read of it changed:
/// its spec, whether it exists, and whether its published Secret holds the current spec (an
/// identity moved to another region lets the old one go only then). Other status writes wake
/// nobody.
pub struct SettingsTriggers {
    seen: memory::Seen<u64>,
    identities: Store<Packed<SenderIdentity>>,
    index: NamespaceIndex,
    wake: UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
}

impl SettingsTriggers {
    pub fn new(
        identities: Store<Packed<SenderIdentity>>,
        index: NamespaceIndex,
        wake: UnboundedSender<ObjectRef<Packed<SenderIdentity>>>,
    ) -> Self {
        Self {
            seen: memory::Seen::default(),
            identities,
            index,
            wake,
        }
    }

    /// Whether the SenderIdentities of this EmailSettings must look again.
    fn changed(&mut self, es: &EmailSettings, deleted: bool) -> bool {
        let key = memory::uid_of(es);
        if deleted {
            self.seen.forget(&key);
            return true;
        }
        let mut h = DefaultHasher::new();
        serde_json::to_string(&es.spec)
            .unwrap_or_default()
            .hash(&mut h);
        es.publishes_current_spec().hash(&mut h);
        self.seen.changed(key, h.finish())
    }

    /// Applies one event of the EmailSettings watch (after the cache has).
    pub fn observe(&mut self, event: &watcher::Event<EmailSettings>) {
        let (es, deleted) = match event {
            watcher::Event::Apply(es) | watcher::Event::InitApply(es) => (es, false),
            watcher::Event::Delete(es) => (es, true),
            // A re-list may hide a deletion or an edit missed while the watch was down:
            // everything listed counts as new.
            watcher::Event::Init => {
                self.seen.clear();
                return;
            }
            watcher::Event::InitDone => return,
        };
        if !self.changed(es, deleted) {
            return;
        }
        let ns = es.namespace().unwrap_or_default();
        for si in naming(&self.identities, &self.index, &ns, &es.name_any()) {
            let _ = self.wake.unbounded_send(si);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::sender_identity::{SenderIdentityStatus, SesLocation};
    use futures::channel::mpsc;

    fn si(name: &str, identity: &str) -> SenderIdentity {
        let mut si = SenderIdentity::new(
            name,
            serde_json::from_value(serde_json::json!({
                "identity": identity,
                "emailSettingsRef": {"name": "notifications"},
            }))
            .expect("spec"),
        );
        si.metadata.namespace = Some("billing".into());
        si
    }

    #[test]
    fn status_writes_wake_only_what_reads_them() {
        let (store, _writer) = kube::runtime::reflector::store();
        let (sib_tx, _sib_rx) = mpsc::unbounded();
        let (es_tx, _es_rx) = mpsc::unbounded();
        let mut t = Triggers::new(store, NamespaceIndex::default(), sib_tx, es_tx);
        let mut a = si("a", "yourcompany.com");
        let everyone = Wake {
            siblings: true,
            settings: true,
        };
        assert_eq!(t.compare(&a, false), everyone, "first sight");
        assert_eq!(t.compare(&a, false), Wake::default(), "no change");

        // Records and conditions: nobody else reads them.
        a.status = Some(SenderIdentityStatus {
            verification_status: Some("Pending".into()),
            ..Default::default()
        });
        assert_eq!(t.compare(&a, false), Wake::default());

        // Verified for sending, in a region: the EmailSettings reads that.
        let st = a.status.get_or_insert_default();
        st.verified_for_sending = Some(true);
        st.ses = Some(SesLocation {
            region: "eu-west-1".into(),
            role_arn: None,
        });
        let settings_only = Wake {
            siblings: false,
            settings: true,
        };
        assert_eq!(t.compare(&a, false), settings_only);

        // A spec edit or a deletion: the policy reads that.
        a.spec.identity = "mail.yourcompany.com".into();
        assert_eq!(t.compare(&a, false), everyone);
        a.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(t.compare(&a, false), everyone);
        assert_eq!(t.compare(&a, true), everyone, "gone");
        assert_eq!(t.compare(&a, false), everyone, "seen anew after deletion");
        assert_eq!(t.compare(&a, false), Wake::default());
        t.observe(&watcher::Event::Init);
        assert_eq!(t.compare(&a, false), everyone, "seen anew after a re-list");
    }

    /// A cache of `a` and `b` (EmailSettings `notifications`) and `other` (`marketing`).
    fn cached() -> (Store<Packed<SenderIdentity>>, NamespaceIndex) {
        let (store, mut writer) = kube::runtime::reflector::store();
        let index = NamespaceIndex::default();
        let mut other = si("other", "someone@yourcompany.com");
        other.spec.email_settings_ref.name = "marketing".into();
        for s in [
            si("a", "yourcompany.com"),
            si("b", "billing@yourcompany.com"),
            other,
        ] {
            let event = watcher::Event::Apply(DeserializeGuard(Ok(s)));
            if let watcher::Event::Apply(g) = &event {
                writer.apply_watcher_event(&watcher::Event::Apply(Packed::pack_guard(g)));
            }
            index.observe(&event);
        }
        (store, index)
    }

    #[test]
    fn siblings_of_the_same_settings_are_woken() {
        let (store, index) = cached();
        let (sib_tx, mut sib_rx) = mpsc::unbounded();
        let (es_tx, mut es_rx) = mpsc::unbounded();
        let mut t = Triggers::new(store, index, sib_tx, es_tx);
        t.observe(&watcher::Event::Apply(DeserializeGuard(Ok(si(
            "a",
            "yourcompany.com",
        )))));
        let woken: Vec<String> = std::iter::from_fn(|| sib_rx.try_recv().ok())
            .map(|r| r.name)
            .collect();
        assert_eq!(woken, ["b"]);
        let settings: Vec<String> = std::iter::from_fn(|| es_rx.try_recv().ok())
            .map(|r| r.name)
            .collect();
        assert_eq!(settings, ["notifications"]);
    }

    fn es(name: &str, region: &str) -> EmailSettings {
        let mut es = EmailSettings::new(
            name,
            serde_json::from_value(serde_json::json!({
                "from": "noreply@yourcompany.com",
                "activeUsers": ["employee@yourcompany.com"],
                "advancedSmtp": {"region": region},
            }))
            .expect("spec"),
        );
        es.metadata.namespace = Some("billing".into());
        es
    }

    #[test]
    fn identities_are_woken_when_their_settings_appear_change_or_go_away() {
        let (store, index) = cached();
        let (tx, mut rx) = mpsc::unbounded();
        let mut t = SettingsTriggers::new(store, index, tx);
        let mut woken = move || {
            let mut names: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
                .map(|r| r.name)
                .collect();
            names.sort();
            names
        };
        let mut notifications = es("notifications", "us-east-1");
        t.observe(&watcher::Event::Apply(notifications.clone()));
        assert_eq!(woken(), ["a", "b"], "it appeared");
        notifications.status = Some(Default::default());
        t.observe(&watcher::Event::Apply(notifications.clone()));
        assert!(
            woken().is_empty(),
            "a status write is nobody else's business"
        );
        notifications.metadata.generation = Some(2);
        notifications.status = Some(crate::crd::EmailSettingsStatus {
            output_secret: Some(crate::crd::email_settings::OutputSecret {
                name: "notifications-smtp".into(),
                validated_generation: 2,
            }),
            ..Default::default()
        });
        t.observe(&watcher::Event::Apply(notifications.clone()));
        assert_eq!(woken(), ["a", "b"], "its current spec is published");
        notifications.spec.advanced_smtp = es("x", "eu-west-1").spec.advanced_smtp;
        t.observe(&watcher::Event::Apply(notifications.clone()));
        assert_eq!(woken(), ["a", "b"], "its region changed");
        t.observe(&watcher::Event::Delete(notifications.clone()));
        assert_eq!(woken(), ["a", "b"], "it went away");
        t.observe(&watcher::Event::Init);
        t.observe(&watcher::Event::InitApply(notifications));
        t.observe(&watcher::Event::InitDone);
        assert_eq!(woken(), ["a", "b"], "listed again after a re-list");
    }
}
