//! `email-operator run`: the two controllers and what they share.
//!
//! Both reconciles are the same pipeline, each step in its own module:
//!
//! 1. **dereference** — read what the object refers to, from the caches (and, for an
//!    EmailSettings, its Secrets);
//! 2. **decide** — pure: what to do now and when to come back, from what was read, what the
//!    status remembers and the time;
//! 3. **apply** — the only step that calls SES, SMTP servers, DNS or writes to Kubernetes;
//! 4. **status** — pure: the new status and the Events its changes are worth.
//!
//! Around them: [`watches`] (every watch and what it wakes), [`context`] (caches, backends,
//! memory, Events, status writes), [`backends`] (SES, DNS and connection tests behind one
//! trait), [`config`] (typed settings), [`recheck`] (the bulk SES listing), [`leader`].

pub mod account;
pub mod backends;
pub mod config;
pub mod context;
pub mod email_settings;
pub mod events;
pub mod gauges;
pub mod index;
pub mod leader;
pub mod memory;
pub mod packed;
pub mod recheck;
pub mod scope;
pub mod secrets;
pub mod sender_identity;
pub mod tenancy;
pub mod triggers;
pub mod watches;

pub use backends::{Backends, Live, SesKey};
pub use config::Config;
pub use context::{Caches, Context, FIELD_MANAGER, Stale, apply_status};
pub use watches::{identity_ref, run};

/// The finalizer on SenderIdentities (SES cleanup).
pub const FINALIZER: &str = "email.ops.dev/ses-identity";
/// Annotation: adopt an existing SES identity that is not tagged as ours.
pub const ADOPT_ANNOTATION: &str = "email.ops.dev/adopt";
/// Annotation on an EmailSettings: send one test message to this recipient through the
/// published Secret, once per new value.
pub const SEND_TEST_ANNOTATION: &str = "email.ops.dev/send-test";
/// Annotation: retry a Failed verification when its value changes.
pub const RETRY_ANNOTATION: &str = "email.ops.dev/retry";

/// `lastCheckedTime` alone is written at most this often: a poll that changes nothing else
/// does not cost a status write (and a watch event for every watcher).
pub const STATUS_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(300);
