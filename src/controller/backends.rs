//! The systems the controllers act on besides Kubernetes — SES, DNS, SMTP servers — behind one
//! trait, so a reconcile runs against the real clients ([`Live`]) or against recording fakes in
//! tests, with nothing else changed.

use super::config;
use crate::dns::lookup::{DnsLookup, HickoryLookup};
use crate::ses::SesApi;
use crate::ses::aws::AwsSes;
use crate::ses::limiter::RateLimiter;
use crate::smtp::{ConnectionTest, Tester};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Where an SES identity lives: a region, reached with the operator's credentials or through
/// a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SesKey {
    pub region: String,
    pub role_arn: Option<String>,
}

impl From<&crate::crd::sender_identity::SesLocation> for SesKey {
    fn from(l: &crate::crd::sender_identity::SesLocation) -> Self {
        Self {
            region: l.region.clone(),
            role_arn: l.role_arn.clone(),
        }
    }
}

/// SES, DNS and connection tests, as the controllers use them.
pub trait Backends: Send + Sync + 'static {
    type Ses: SesApi + Clone + Send + Sync + 'static;
    type Dns: DnsLookup + 'static;
    type Tester: ConnectionTest + 'static;

    /// The SES client of one account (or role) and region, with its rate limiter.
    fn ses(&self, key: &SesKey) -> impl Future<Output = Self::Ses> + Send;
    fn dns(&self) -> &Self::Dns;
    fn tester(&self) -> &Self::Tester;
}

/// The real clients: aws-sdk-sesv2, hickory-resolver, lettre.
pub struct Live {
    settings: config::Ses,
    clients: tokio::sync::Mutex<HashMap<SesKey, AwsSes>>,
    /// One limiter per AWS account and region, shared by every client of that account (SES's
    /// 1 request a second is the account's, whichever role calls).
    limiters: Mutex<HashMap<(String, String), Arc<RateLimiter>>>,
    dns: HickoryLookup,
    tester: Tester,
}

impl Live {
    pub fn new(settings: config::Ses, dns: HickoryLookup, tester: Tester) -> Self {
        Self {
            settings,
            clients: tokio::sync::Mutex::default(),
            limiters: Mutex::default(),
            dns,
            tester,
        }
    }

    /// The rate limiter of the account and region `key` calls SES in: the role's account, or
    /// the operator's own (named by `--aws-account-id`, else taken as one account).
    fn limiter(&self, key: &SesKey) -> Arc<RateLimiter> {
        let account = key
            .role_arn
            .as_deref()
            .and_then(crate::ses::aws::account_of_role)
            .or_else(|| self.settings.aws_account_id.clone())
            .unwrap_or_default();
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        limiters
            .entry((account, key.region.clone()))
            .or_insert_with(|| Arc::new(RateLimiter::new(self.settings.max_rps)))
            .clone()
    }
}

impl Backends for Live {
    type Ses = AwsSes;
    type Dns = HickoryLookup;
    type Tester = Tester;

    async fn ses(&self, key: &SesKey) -> AwsSes {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(key) {
            return c.clone();
        }
        let client = AwsSes::new(
            &key.region,
            key.role_arn.as_deref(),
            self.settings.aws_account_id.as_deref(),
            self.limiter(key),
        )
        .await;
        clients.insert(key.clone(), client.clone());
        client
    }

    fn dns(&self) -> &HickoryLookup {
        &self.dns
    }

    fn tester(&self) -> &Tester {
        &self.tester
    }
}
