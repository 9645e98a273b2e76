//! email-operator: declare in Kubernetes how applications send email.
//!
//! The library holds the API types ([`crd`]), the pure policy ([`policy`]) and record-building
//! ([`dns`]) steps, the offline [`plan`] and, later, the controllers; `main.rs` is only the
//! command line.

pub mod clock;
pub mod controller;
pub mod crd;
pub mod dns;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod plan;
pub mod policy;
pub mod ses;
pub mod smtp;
