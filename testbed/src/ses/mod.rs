//! An Amazon SES v2 stand-in that behaves like SES over the real AWS SDK wire protocol.
//!
//! * [`wire`] routes restJson1 requests to [`ops`], which work on the [`model`] and answer in
//!   [`shapes`]; errors have the AWS shapes ([`errors`]) so the SDK's typed errors work.
//! * [`lifecycle`] moves identities through PENDING → SUCCESS / FAILED / TEMPORARY_FAILURE by
//!   querying a real DNS server and measuring windows on the stand-in [`Clock`].
//! * [`faults`] injects throttling, 5xx and latency and counts calls; [`outbox`] keeps the
//!   verification and sent messages.
//! * [`smtp`] is SES's SMTP interface over real sockets and TLS, sending into the same outbox.
//!
//! Account id is fixed ([`ACCOUNT_ID`]); the region comes from each request's signature.

pub mod account;
pub mod errors;
pub mod faults;
pub mod lifecycle;
pub mod limits;
pub mod model;
pub mod ops;
pub mod outbox;
pub mod regions;
pub mod shapes;
pub mod simulator;
pub mod smtp;
pub mod tags;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

use crate::clock::Clock;
use faults::{Calls, Faults, lock};
use model::{Identity, IdentityType, Status, Store};
use outbox::OutboxMessage;

/// The AWS account id the stand-in reports in ARNs.
pub const ACCOUNT_ID: &str = "123456789012";
/// Default real-time interval between lifecycle checks.
pub const DEFAULT_TICK: Duration = Duration::from_millis(250);

/// Everything the SES stand-in knows; shared by the HTTP handlers, the lifecycle task and the
/// control API.
pub struct SesState {
    pub clock: Clock,
    pub account_id: String,
    pub store: Mutex<Store>,
    pub outbox: Mutex<Vec<OutboxMessage>>,
    /// The account's standing in each region (sandbox, enforcement, quota).
    pub account: account::Account,
    pub faults: Faults,
    /// The request rate and identity quota in force.
    pub limits: limits::Limits,
    pub calls: Calls,
    /// The IAM access keys the SMTP interface stand-in accepts logins from.
    pub smtp_credentials: smtp::SmtpCredentials,
    /// Wakes the lifecycle task for an immediate re-check.
    pub recheck: Notify,
}

/// Why an email identity could not be confirmed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfirmError {
    #[error("no email identity {0} in any region")]
    NotFound(String),
    #[error("{0} exists in several regions ({1}); say which with \"region\"")]
    Ambiguous(String, String),
    #[error("{0} is a domain identity; domains are verified through DNS")]
    NotAnEmail(String),
    #[error("the verification link for {0} has expired (identity status {1})")]
    Expired(String, &'static str),
}

impl SesState {
    fn new(clock: Clock, limits: limits::Limits) -> Self {
        Self {
            clock,
            account_id: ACCOUNT_ID.to_string(),
            store: Mutex::default(),
            outbox: Mutex::default(),
            account: account::Account::default(),
            faults: Faults::default(),
            limits,
            calls: Calls::default(),
            smtp_credentials: smtp::SmtpCredentials::default(),
            recheck: Notify::new(),
        }
    }

    /// Asks the lifecycle to re-check every identity now (after DNS edits or clock moves).
    pub fn recheck_now(&self) {
        lock(&self.store).reset_backoff();
        self.recheck.notify_one();
    }

    /// Every identity in every region, with whether it is verified for sending.
    pub fn identities(&self) -> Vec<(Identity, bool)> {
        let store = lock(&self.store);
        store
            .all()
            .map(|identity| (identity.clone(), store.verified_for_sending(identity)))
            .collect()
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Vec<OutboxMessage> {
        lock(&self.outbox).clone()
    }

    /// "Clicks the link" in an email identity's verification message. `region` may be omitted
    /// when the address exists in one region only.
    pub fn confirm_email(
        &self,
        name: &str,
        region: Option<&str>,
    ) -> Result<Identity, ConfirmError> {
        let now = self.clock.now();
        let mut store = lock(&self.store);
        let region = match region {
            Some(region) => region.to_string(),
            None => {
                let regions: Vec<String> = store
                    .all()
                    .filter(|i| {
                        model::identity_key(&i.region, &i.name).1 == model::identity_key("", name).1
                    })
                    .map(|i| i.region.clone())
                    .collect();
                match regions.as_slice() {
                    [] => return Err(ConfirmError::NotFound(name.into())),
                    [one] => one.clone(),
                    many => return Err(ConfirmError::Ambiguous(name.into(), many.join(", "))),
                }
            }
        };
        let identity = store
            .get_mut(&region, name)
            .map_err(|_| ConfirmError::NotFound(name.into()))?;
        if identity.identity_type != IdentityType::EmailAddress {
            return Err(ConfirmError::NotAnEmail(name.into()));
        }
        lifecycle::expire_email(identity, now);
        match identity.status {
            Status::Pending => {
                identity.status = Status::Success;
                identity.status_since = now;
                identity.last_success = Some(now);
                identity.error_type = None;
            }
            Status::Success => {}
            other => return Err(ConfirmError::Expired(name.into(), other.as_str())),
        }
        Ok(identity.clone())
    }
}

/// How to start the SES stand-in.
#[derive(Clone, Debug)]
pub struct SesOptions {
    /// Where to listen (port 0 = ephemeral).
    pub addr: SocketAddr,
    /// The DNS server the lifecycle checks records against.
    pub dns_server: SocketAddr,
    /// The stand-in clock (share it with the control API).
    pub clock: Clock,
    /// Real-time interval between lifecycle checks.
    pub tick: Duration,
    /// The request rate and identity quota (default: SES's, 1 request a second per account
    /// and region and 10,000 identities per region).
    pub limits: limits::LimitConfig,
}

impl SesOptions {
    /// Listen on an ephemeral 127.0.0.1 port, check records at `dns_server`.
    pub fn new(dns_server: SocketAddr, clock: Clock) -> Self {
        Self {
            addr: ([127, 0, 0, 1], 0).into(),
            dns_server,
            clock,
            tick: DEFAULT_TICK,
            limits: limits::LimitConfig::default(),
        }
    }
}

/// A running SES stand-in. Dropping it stops the server and the lifecycle task.
pub struct SesServer {
    addr: SocketAddr,
    state: Arc<SesState>,
    _stop_http: oneshot::Sender<()>,
    _stop_lifecycle: oneshot::Sender<()>,
}

impl SesServer {
    /// Binds, starts serving and starts the lifecycle task.
    pub async fn start(options: SesOptions) -> io::Result<Self> {
        let resolver =
            crate::dns::resolve::resolver(options.dns_server).map_err(io::Error::other)?;
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let limits = limits::Limits::new(options.limits).map_err(io::Error::other)?;
        let state = Arc::new(SesState::new(options.clock, limits));

        let app = axum::Router::new()
            .fallback(wire::dispatch)
            .with_state(state.clone());
        let (stop_http, http_stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = http_stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "ses stand-in stopped with an error");
            }
        });

        let (stop_lifecycle, lifecycle_stopped) = oneshot::channel::<()>();
        tokio::spawn(lifecycle::run(
            state.clone(),
            resolver,
            options.tick,
            lifecycle_stopped,
        ));
        tracing::info!(%addr, dns = %options.dns_server, "ses stand-in listening");
        Ok(Self {
            addr,
            state,
            _stop_http: stop_http,
            _stop_lifecycle: stop_lifecycle,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL to give the AWS SDK (`AWS_ENDPOINT_URL_SESV2`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (for the control API and in-process tests).
    pub fn state(&self) -> Arc<SesState> {
        self.state.clone()
    }
}
