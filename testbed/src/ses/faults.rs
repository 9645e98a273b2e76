//! Injected faults and call counters: what tests and benchmarks use to exercise retries,
//! rate limiting and backoff, and to count what the operator actually called.
//!
//! Each SES call draws one number from a seedable RNG: below `throttleRate` it is throttled
//! (`TooManyRequestsException`, HTTP 429), below `throttleRate + errorRate` it fails with HTTP
//! 500; otherwise it is served. Every call first waits `latencyMs`. With a fixed `seed` a
//! sequence of calls gets the same decisions every run, so rate tests are deterministic.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::errors::SesError;

/// The fault settings (`PUT /ses/faults`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction of calls answered with `TooManyRequestsException` (0.0–1.0).
    #[serde(default)]
    pub throttle_rate: f64,
    /// Fraction of calls answered with HTTP 500 `InternalFailure` (0.0–1.0).
    #[serde(default)]
    pub error_rate: f64,
    /// Added latency before every call is answered, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Reseeds the fault RNG when set, for reproducible fault sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultConfig {
    fn validate(&self) -> Result<(), String> {
        let in_range = |r: f64| (0.0..=1.0).contains(&r);
        if !in_range(self.throttle_rate) || !in_range(self.error_rate) {
            return Err("throttleRate and errorRate must be between 0 and 1".into());
        }
        if self.throttle_rate + self.error_rate > 1.0 {
            return Err("throttleRate + errorRate must not exceed 1".into());
        }
        if self.latency_ms > 60_000 {
            return Err("latencyMs must not exceed 60000".into());
        }
        Ok(())
    }
}

/// The fault injector shared by all SES requests.
pub struct Faults {
    config: Mutex<FaultConfig>,
    rng: Mutex<StdRng>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            config: Mutex::default(),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }
}

impl Faults {
    /// Replaces the settings; reseeds the RNG when `seed` is given.
    pub fn set(&self, config: FaultConfig) -> Result<FaultConfig, String> {
        config.validate()?;
        if let Some(seed) = config.seed {
            *lock(&self.rng) = StdRng::seed_from_u64(seed);
        }
        *lock(&self.config) = config.clone();
        Ok(config)
    }

    /// The current settings.
    pub fn get(&self) -> FaultConfig {
        lock(&self.config).clone()
    }

    /// Decides the fate of one call: the latency to add, and the error to answer with, if any.
    pub fn decide(&self) -> (Duration, Option<SesError>) {
        let config = self.get();
        let latency = Duration::from_millis(config.latency_ms);
        if config.throttle_rate <= 0.0 && config.error_rate <= 0.0 {
            return (latency, None);
        }
        let draw: f64 = lock(&self.rng).random();
        let fault = if draw < config.throttle_rate {
            Some(SesError::TooManyRequests)
        } else if draw < config.throttle_rate + config.error_rate {
            Some(SesError::InternalFailure)
        } else {
            None
        };
        (latency, fault)
    }
}

/// Counts of calls by operation and outcome (`Success` or the error code).
#[derive(Default)]
pub struct Calls {
    counts: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl Calls {
    /// Counts one call.
    pub fn record(&self, operation: &str, outcome: &str) {
        *lock(&self.counts)
            .entry(operation.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    /// All counts: operation → outcome → count.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        lock(&self.counts).clone()
    }

    /// Forgets all counts.
    pub fn reset(&self) {
        lock(&self.counts).clear();
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the counters and
/// settings stay meaningful either way).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_honoured_and_reproducible() {
        let faults = Faults::default();
        let config = FaultConfig {
            throttle_rate: 0.2,
            error_rate: 0.1,
            latency_ms: 0,
            seed: Some(7),
        };
        faults.set(config.clone()).expect("valid");
        let run = |faults: &Faults| {
            (0..10_000)
                .map(|_| faults.decide().1.map(|e| e.code()))
                .collect::<Vec<_>>()
        };
        let first = run(&faults);
        let throttled = first
            .iter()
            .filter(|c| **c == Some("TooManyRequestsException"))
            .count();
        let failed = first
            .iter()
            .filter(|c| **c == Some("InternalFailure"))
            .count();
        assert!(
            (1_800..=2_200).contains(&throttled),
            "throttled {throttled}"
        );
        assert!((800..=1_200).contains(&failed), "failed {failed}");
        faults.set(config).expect("valid");
        assert_eq!(run(&faults), first);
    }

    #[test]
    fn rejects_impossible_rates() {
        let faults = Faults::default();
        let bad = FaultConfig {
            throttle_rate: 0.8,
            error_rate: 0.5,
            ..FaultConfig::default()
        };
        assert!(faults.set(bad).is_err());
    }

    #[test]
    fn counts_by_operation_and_outcome() {
        let calls = Calls::default();
        calls.record("GetEmailIdentity", "Success");
        calls.record("GetEmailIdentity", "Success");
        calls.record("GetEmailIdentity", "NotFoundException");
        let snapshot = calls.snapshot();
        assert_eq!(snapshot["GetEmailIdentity"]["Success"], 2);
        assert_eq!(snapshot["GetEmailIdentity"]["NotFoundException"], 1);
        calls.reset();
        assert!(calls.snapshot().is_empty());
    }
}
