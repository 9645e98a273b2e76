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
/// a role — assumed for one namespace (the session names it, so the role's trust policy can
/// tell tenants apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SesKey {
    pub region: String,
    pub role_arn: Option<String>,
    /// The namespace a role is assumed for (None without a role).
    pub namespace: Option<String>,
}

impl SesKey {
    /// The key of `location` for a SenderIdentity of `namespace`.
    pub fn of(l: &crate::crd::sender_identity::SesLocation, namespace: &str) -> Self {
        Self {
            region: l.region.clone(),
            namespace: l.role_arn.as_ref().map(|_| namespace.to_string()),
            role_arn: l.role_arn.clone(),
        }
    }
}

/// How a role is assumed for a namespace: the external id and session tags a role's trust
/// policy can require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    pub session_name: String,
    pub external_id: String,
    pub tags: Vec<(String, String)>,
}

impl RoleSession {
    pub fn new(cluster_id: &str, namespace: &str) -> Self {
        let session_name: String = format!("email-operator-{namespace}")
            .chars()
            .take(64)
            .collect();
        Self {
            session_name,
            external_id: format!("email-operator:{cluster_id}:{namespace}"),
            tags: vec![
                ("email-operator/namespace".into(), namespace.into()),
                ("email-operator/cluster".into(), cluster_id.into()),
            ],
        }
    }
}

/// At most this many SES clients are kept (one per region, role and namespace); the one used
/// least recently goes first.
pub const MAX_CLIENTS: usize = 64;

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
    cluster_id: String,
    clients: tokio::sync::Mutex<HashMap<SesKey, (AwsSes, std::time::Instant)>>,
    /// One limiter per AWS account and region, shared by every client of that account (SES's
    /// 1 request a second is the account's, whichever role calls).
    limiters: Mutex<HashMap<(String, String), Arc<RateLimiter>>>,
    dns: HickoryLookup,
    tester: Tester,
}

impl Live {
    pub fn new(
        settings: config::Ses,
        cluster_id: &str,
        dns: HickoryLookup,
        tester: Tester,
    ) -> Self {
        Self {
            settings,
            cluster_id: cluster_id.to_string(),
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
        let now = std::time::Instant::now();
        if let Some((c, used)) = clients.get_mut(key) {
            *used = now;
            return c.clone();
        }
        let session = key
            .namespace
            .as_deref()
            .map(|ns| RoleSession::new(&self.cluster_id, ns));
        let client = AwsSes::new(
            &key.region,
            key.role_arn.as_deref(),
            session.as_ref(),
            self.settings.aws_account_id.as_deref(),
            self.limiter(key),
        )
        .await;
        if clients.len() >= MAX_CLIENTS
            && let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            clients.remove(&oldest);
        }
        clients.insert(key.clone(), (client.clone(), now));
        client
    }

    fn dns(&self) -> &HickoryLookup {
        &self.dns
    }

    fn tester(&self) -> &Tester {
        &self.tester
    }
}
