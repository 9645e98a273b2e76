//! Time, injected: the 72 h / 24 h windows and backoff are computed from a [`Clock`] so tests
//! move time instead of sleeping (the test bed has a clock that moves only when told).

use k8s_openapi::jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
