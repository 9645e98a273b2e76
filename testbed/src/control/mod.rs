//! The test bed's control API: HTTP/JSON on 127.0.0.1 for what tests, benchmarks and demos
//! need to change or observe — DNS records, the stand-in clock, SES faults and counters, SES
//! identities, the outbox, and "clicking" email verification links. See docs/testing/aws-stand-ins.md, "Control API".
//!
//! [`AwsTestbed`] starts DNS, SES and this API together, wired to one zone and one clock.

pub mod routes;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::dns::{DnsServer, Zone};
use crate::ses::limits::LimitConfig;
use crate::ses::smtp::{SesSmtp, SesSmtpOptions};
use crate::ses::{SesOptions, SesServer, SesState};
use crate::sts::StsServer;

/// What the control API operates on.
pub struct ControlState {
    pub zone: Zone,
    pub clock: Clock,
    pub ses: Arc<SesState>,
    pub sts: Arc<crate::sts::StsState>,
}

/// The control API's routes.
pub fn router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route(
            "/dns/records",
            get(routes::list_records)
                .post(routes::add_record)
                .delete(routes::remove_record),
        )
        .route("/clock", get(routes::get_clock))
        .route("/clock/advance", post(routes::advance_clock))
        .route(
            "/ses/faults",
            get(routes::get_faults).put(routes::put_faults),
        )
        .route(
            "/ses/calls",
            get(routes::get_calls).delete(routes::reset_calls),
        )
        .route(
            "/ses/limits",
            get(routes::get_limits).put(routes::put_limits),
        )
        .route(
            "/ses/account",
            get(routes::get_account).put(routes::put_account),
        )
        .route("/ses/identities", get(routes::list_identities))
        .route("/ses/outbox", get(routes::outbox))
        .route("/ses/confirm-email", post(routes::confirm_email))
        .route("/ses/smtp-credentials", post(routes::add_smtp_credentials))
        .route("/sts/assumed", get(routes::assumed_roles))
        .with_state(state)
}

/// A running control API. Dropping it stops the server.
pub struct ControlServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl ControlServer {
    /// Serves the control API on `addr` (port 0 = ephemeral).
    pub async fn start(addr: SocketAddr, state: Arc<ControlState>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state);
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "control API stopped with an error");
            }
        });
        tracing::info!(%addr, "control API listening");
        Ok(Self { addr, _stop: stop })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL (`TESTBED_CONTROL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Ports for [`AwsTestbed::start`]; 0 means ephemeral.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsPorts {
    pub dns: u16,
    pub ses: u16,
    pub control: u16,
}

/// DNS server, SES (API and SMTP interface) and STS stand-ins and control API, sharing one
/// zone and one clock.
pub struct AwsTestbed {
    pub clock: Clock,
    pub dns: DnsServer,
    pub ses: SesServer,
    /// SES's SMTP interface, on the same SES state (ephemeral ports, STARTTLS and implicit TLS).
    pub ses_smtp: SesSmtp,
    pub sts: StsServer,
    pub control: ControlServer,
}

impl AwsTestbed {
    /// Starts them all on 127.0.0.1 with SES's real limits; SES checks records against this
    /// DNS server.
    pub async fn start(ports: AwsPorts) -> io::Result<Self> {
        Self::start_with(ports, LimitConfig::default()).await
    }

    /// Like [`AwsTestbed::start`], with other SES limits (tests that need speed raise the
    /// request rate).
    pub async fn start_with(ports: AwsPorts, limits: LimitConfig) -> io::Result<Self> {
        let clock = Clock::new();
        let zone = Zone::new();
        let dns = DnsServer::start(([127, 0, 0, 1], ports.dns).into(), zone.clone()).await?;
        let mut ses_options = SesOptions::new(dns.addr(), clock.clone());
        ses_options.addr = ([127, 0, 0, 1], ports.ses).into();
        ses_options.limits = limits;
        let ses = SesServer::start(ses_options).await?;
        let ses_smtp = SesSmtp::start(ses.state(), SesSmtpOptions::default()).await?;
        let sts = StsServer::start(([127, 0, 0, 1], 0).into()).await?;
        let state = Arc::new(ControlState {
            zone,
            clock: clock.clone(),
            ses: ses.state(),
            sts: sts.state(),
        });
        let control = ControlServer::start(([127, 0, 0, 1], ports.control).into(), state).await?;
        Ok(Self {
            clock,
            dns,
            ses,
            ses_smtp,
            sts,
            control,
        })
    }

    /// The `export NAME=value` lines for the AWS/DNS/control part of `DIR/env`
    /// (`AWS_ENDPOINT_URL_SESV2`, `AWS_ENDPOINT_URL_STS`, `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// dummy credentials, `TESTBED_DNS`, `TESTBED_CONTROL`, `TESTBED_SES_SMTP_ENDPOINT` (the
    /// STARTTLS endpoint as `localhost:PORT`, for the operator's `--ses-smtp-endpoint`) and
    /// `TESTBED_SES_SMTPS_ENDPOINT` (implicit TLS)). The caller adds `KUBECONFIG` and
    /// `TESTBED_SES_SMTP_CA` (see `demo::write_env`).
    pub fn env_lines(&self, region: &str) -> Vec<String> {
        [
            ("AWS_ENDPOINT_URL_SESV2", self.ses.endpoint_url()),
            ("AWS_ENDPOINT_URL_STS", self.sts.endpoint_url()),
            ("AWS_REGION", region.to_string()),
            // AWS CLI v1 and older SDKs read this one instead.
            ("AWS_DEFAULT_REGION", region.to_string()),
            ("AWS_ACCESS_KEY_ID", "AKIDTESTBED".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testbed-secret".to_string()),
            ("TESTBED_DNS", self.dns.addr().to_string()),
            ("TESTBED_CONTROL", self.control.url()),
            ("TESTBED_SES_SMTP_ENDPOINT", self.ses_smtp.endpoint()),
        ]
        .into_iter()
        .chain(self.ses_smtp.implicit_tls_addr().map(|a| {
            (
                "TESTBED_SES_SMTPS_ENDPOINT",
                format!("localhost:{}", a.port()),
            )
        }))
        .map(|(name, value)| export_line(name, &value))
        .collect()
    }
}

/// One `export NAME='value'` line, single-quoted so any value is safe to source.
pub fn export_line(name: &str, value: &str) -> String {
    format!("export {name}='{}'", value.replace('\'', r"'\''"))
}
