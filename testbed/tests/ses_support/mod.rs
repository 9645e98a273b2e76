//! Shared setup for the SES / DNS / control API tests: start the AWS side of the test bed on
//! ephemeral ports, build a real aws-sdk-sesv2 client for it, talk to the control API, and
//! poll with bounded timeouts.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};
use testbed::control::{AwsPorts, AwsTestbed};
use testbed::ses::limits::LimitConfig;

/// kube brings rustls' ring provider, the AWS HTTP client aws-lc-rs: pick one explicitly.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// DNS + SES + control API on ephemeral 127.0.0.1 ports, SES's request rate raised so that
/// tests of other behaviour do not wait on it (see [`start_as_shipped`]).
pub async fn start() -> AwsTestbed {
    install_crypto();
    let limits = LimitConfig {
        requests_per_second: None,
        ..LimitConfig::default()
    };
    AwsTestbed::start_with(AwsPorts::default(), limits)
        .await
        .expect("start the AWS test bed")
}

/// The AWS test bed with SES's real limits (1 request a second per account and region).
pub async fn start_as_shipped() -> AwsTestbed {
    install_crypto();
    AwsTestbed::start(AwsPorts::default())
        .await
        .expect("start the AWS test bed")
}

/// A real SES v2 client pointed at `endpoint`, built the way the operator builds one (shared
/// config + static credentials), with SDK retries off so each call is one request.
pub async fn ses_client(endpoint: &str, region: &str) -> aws_sdk_sesv2::Client {
    install_crypto();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .http_client(email_operator::ses::aws::https())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sesv2::Client::new(&shared)
}

/// The control API, as tests use it.
pub struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request and returns (status, JSON body or Null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control API reachable");
        let status = response.status().as_u16();
        let text = response.text().await.expect("control API body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn add_record(&self, name: &str, record_type: &str, value: &str) {
        let body = json!({ "name": name, "type": record_type, "value": value });
        let (status, reply) = self
            .call(reqwest::Method::POST, "/dns/records", Some(body))
            .await;
        assert_eq!(status, 201, "add {name} {record_type}: {reply}");
    }

    pub async fn remove_record(&self, name: &str, record_type: &str) {
        let body = json!({ "name": name, "type": record_type });
        let (status, reply) = self
            .call(reqwest::Method::DELETE, "/dns/records", Some(body))
            .await;
        assert_eq!(status, 200, "remove {name} {record_type}: {reply}");
    }

    pub async fn advance_hours(&self, hours: i64) {
        let body = json!({ "seconds": hours * 3600 });
        let (status, reply) = self
            .call(reqwest::Method::POST, "/clock/advance", Some(body))
            .await;
        assert_eq!(status, 200, "advance clock: {reply}");
    }

    pub async fn set_faults(&self, faults: Value) {
        let (status, reply) = self
            .call(reqwest::Method::PUT, "/ses/faults", Some(faults))
            .await;
        assert_eq!(status, 200, "set faults: {reply}");
    }

    /// Publishes the three DKIM CNAMEs SES asked for.
    pub async fn publish_dkim(&self, domain: &str, tokens: &[String], zone: &str) {
        for token in tokens {
            self.add_record(
                &format!("{token}._domainkey.{domain}"),
                "CNAME",
                &format!("{token}.{zone}"),
            )
            .await;
        }
    }
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bound for "converges within seconds".
pub const CONVERGE: Duration = Duration::from_secs(10);
