//! A controllable clock shared by the SES stand-in and the control API.
//!
//! Stand-in time is real time plus an offset that only moves forward (`POST /clock/advance`).
//! SES's lifecycle windows (72 h for DKIM, 24 h for email verification links) are measured on
//! this clock, so tests cover them in seconds instead of days, while everything else (timeouts,
//! the lifecycle tick) keeps running on real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

/// Real time plus an advanceable offset. Cheap to clone; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

#[derive(Debug, Default)]
struct ClockInner {
    offset_ms: AtomicI64,
    advanced: Notify,
}

impl Clock {
    /// A clock that starts at real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stand-in's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// How far the stand-in's time is ahead of real time.
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.inner.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves stand-in time forward by `by` (negative values are ignored: time never runs
    /// backwards, as lifecycle deadlines assume) and wakes everyone waiting in [`Clock::advanced`].
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let ms = by.num_milliseconds().max(0);
        self.inner.offset_ms.fetch_add(ms, Ordering::SeqCst);
        self.inner.advanced.notify_waiters();
        self.now()
    }

    /// Resolves the next time the clock is advanced, so periodic checks can re-run at once.
    pub async fn advanced(&self) {
        self.inner.advanced.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward_and_never_back() {
        let clock = Clock::new();
        let before = clock.now();
        clock.advance(TimeDelta::hours(72));
        assert!(clock.now() - before >= TimeDelta::hours(72));
        clock.advance(TimeDelta::hours(-100));
        assert!(clock.now() - before >= TimeDelta::hours(72));
        assert_eq!(clock.clone().offset(), TimeDelta::hours(72));
    }
}
