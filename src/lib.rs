//! email-operator: declare in Kubernetes how applications send email.
//!
//! The library holds the API types ([`crd`]), the pure policy ([`policy`]) and record-building
//! ([`dns`]) steps, the offline [`plan`], the SES, SMTP and DNS clients ([`ses`], [`smtp`],
//! [`dns`]) and the [`controller`]s; `main.rs` and `cli/` are the command line. Nothing here
//! exists only to test or measure the operator: that is the test bed's.

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
