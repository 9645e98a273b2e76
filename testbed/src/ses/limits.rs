//! SES's service quotas that the operator's calls meet, enforced as SES enforces them.
//!
//! * **Management API rate**: "every Amazon SES API action except sending email is limited to
//!   one request per second per account and region; this limit cannot be increased" (SES
//!   Developer Guide, "Service quotas in Amazon SES", *Rate at which you can call Amazon SES
//!   API actions*). Past it SES answers `TooManyRequestsException` (HTTP 429) and returns no
//!   rate-limit headers. Modelled as a token bucket per account and region holding at most one
//!   second's worth of requests (one at the real rate): a request that finds no token is
//!   refused and takes none. Tests that need speed raise the rate explicitly
//!   (`testbed up --ses-rps`, `PUT /ses/limits`).
//! * **Identities**: "You can verify as many as 10,000 identities in each Region" (SES
//!   Developer Guide, "Creating and verifying identities"); past it CreateEmailIdentity
//!   answers `LimitExceededException` (HTTP 400) — a quota, not throttling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::faults::lock;

/// The real management-API rate, requests per second per account and region.
pub const SES_API_RATE: f64 = 1.0;
/// The real identity quota per region.
pub const MAX_IDENTITIES_PER_REGION: usize = 10_000;

/// The limits in force (`GET|PUT /ses/limits`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitConfig {
    /// Management API requests per second per account and region; `null` for no limit.
    pub requests_per_second: Option<f64>,
    /// Identities per region.
    pub max_identities_per_region: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            requests_per_second: Some(SES_API_RATE),
            max_identities_per_region: MAX_IDENTITIES_PER_REGION,
        }
    }
}

impl LimitConfig {
    fn validate(&self) -> Result<(), String> {
        if self
            .requests_per_second
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return Err("requestsPerSecond must be a positive number, or null for no limit".into());
        }
        Ok(())
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The limits and the per-account-and-region buckets.
#[derive(Default)]
pub struct Limits {
    config: Mutex<LimitConfig>,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl Limits {
    pub fn new(config: LimitConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self {
            config: Mutex::new(config),
            buckets: Mutex::default(),
        })
    }

    /// Replaces the limits (the buckets start full).
    pub fn set(&self, config: LimitConfig) -> Result<LimitConfig, String> {
        config.validate()?;
        *lock(&self.config) = config.clone();
        lock(&self.buckets).clear();
        Ok(config)
    }

    pub fn get(&self) -> LimitConfig {
        lock(&self.config).clone()
    }

    pub fn max_identities(&self) -> usize {
        lock(&self.config).max_identities_per_region
    }

    /// Whether a management request of `account` in `region` arriving `now` is within the rate;
    /// an admitted request takes a token.
    pub fn admit(&self, account: &str, region: &str, now: Instant) -> bool {
        let Some(rate) = lock(&self.config).requests_per_second else {
            return true;
        };
        let capacity = rate.max(1.0);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry((account.to_string(), region.to_string()))
            .or_insert(Bucket {
                tokens: capacity,
                last: now,
            });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_request_a_second_per_account_and_region() {
        let limits = Limits::default();
        let t0 = Instant::now();
        assert!(limits.admit("123456789012", "us-east-1", t0));
        assert!(!limits.admit("123456789012", "us-east-1", t0 + Duration::from_millis(999)));
        // The refused request took no token: at one second since the last admitted one, the
        // next is admitted.
        assert!(limits.admit(
            "123456789012",
            "us-east-1",
            t0 + Duration::from_millis(1000)
        ));
        // Other regions and accounts have their own allowance.
        assert!(limits.admit("123456789012", "eu-west-1", t0));
        assert!(limits.admit("210987654321", "us-east-1", t0));
        // Idle time does not bank more than one request.
        let later = t0 + Duration::from_secs(60);
        assert!(limits.admit("123456789012", "us-east-1", later));
        assert!(!limits.admit("123456789012", "us-east-1", later));
    }

    #[test]
    fn a_raised_rate_allows_a_second_worth_and_no_limit_allows_all() {
        let limits = Limits::default();
        limits
            .set(LimitConfig {
                requests_per_second: Some(100.0),
                ..LimitConfig::default()
            })
            .expect("set");
        let t0 = Instant::now();
        assert!((0..100).all(|_| limits.admit("a", "r", t0)));
        assert!(!limits.admit("a", "r", t0));
        limits
            .set(LimitConfig {
                requests_per_second: None,
                ..LimitConfig::default()
            })
            .expect("set");
        assert!((0..1000).all(|_| limits.admit("a", "r", t0)));
        assert!(
            limits
                .set(LimitConfig {
                    requests_per_second: Some(0.0),
                    ..LimitConfig::default()
                })
                .is_err()
        );
    }
}
