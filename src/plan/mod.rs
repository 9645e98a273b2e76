//! `email-operator plan`: an offline reconcile of manifests, for GitOps pipelines.
//!
//! For every EmailSettings and SenderIdentity among the inputs it answers, without a cluster:
//! would the API server admit it (schema and CEL rules, evaluated locally), would the sender
//! policy accept it, what would the operator do in SES and with Secrets, and which DNS records
//! are already knowable. Objects of other kinds are listed as ignored.
//!
//! The JSON form is a stable interface:
//! `{"objects":[{"kind","namespace","name","source","accepted","reason","message","actions":[…],
//! "dnsRecords":[{"name","type","value","purpose"}],"notes":[…]}],"ignored":[{"kind","apiVersion",
//! "namespace","name","source","note"}]}`.

mod actions;
pub mod check_smtp;
mod evaluate;
pub mod load;
pub mod render;

pub use evaluate::evaluate;
pub use load::{Document, LoadError, load};
pub use render::{Format, render};

use crate::crd::sender_identity::DnsRecord;
use serde::Serialize;

/// What `plan` concluded about one of our objects.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `file#document` the object came from.
    pub source: String,
    pub accepted: bool,
    /// `Accepted`, or the stable CamelCase reason it would be rejected for.
    pub reason: String,
    pub message: String,
    /// What the operator would do, in order.
    pub actions: Vec<String>,
    /// DNS records that can be known before SES is asked (SPF advice, MAIL FROM).
    pub dns_records: Vec<DnsRecord>,
    /// Advice that does not affect acceptance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// An input object of a kind the operator does not manage.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    pub kind: String,
    pub api_version: String,
    /// Absent for cluster-scoped objects (and objects that name no namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub source: String,
    pub note: String,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Report {
    pub objects: Vec<ObjectReport>,
    pub ignored: Vec<Ignored>,
}

impl Report {
    /// Whether every object would be accepted (exit status 0).
    pub fn all_accepted(&self) -> bool {
        self.objects.iter().all(|o| o.accepted)
    }
}
