//! Frugal with the SES API: one client-side rate limiter per account and region (a token
//! bucket), whose rate halves when SES throttles and recovers additively as calls succeed, and
//! retries with full jitter for throttling and 5xx. Every attempt, retries included, waits for
//! a token, so a burst of reconciles never turns into a burst of SES calls.

use super::SesError;
use super::turns::{Turn, Turns};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 6;
/// First retry delay ceiling; doubles per attempt (full jitter below it).
const BASE_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// The bucket refills this much slower than the limit. SES counts requests as they arrive, and
/// requests that leave exactly one interval apart can arrive closer together (one delayed on
/// its way, the next not); 5% is 50 ms of such jitter at SES's 1 request a second.
const PACING: f64 = 0.95;

struct State {
    rate: f64,
    tokens: f64,
    last: Instant,
}

/// A token bucket with adaptive rate (AIMD), handing out tokens in the order they were asked
/// for, and the namespaces' turns at it ([`Turns`]).
pub struct RateLimiter {
    max_rate: f64,
    state: Mutex<State>,
    /// Callers wait for a token one after the other, first come first served (tokio's mutex
    /// is fair), so a call never waits behind more calls than were asked for before it.
    queue: tokio::sync::Mutex<()>,
    /// Callers waiting for a token now.
    waiting: AtomicUsize,
    turns: Arc<Turns>,
}

/// Counts a caller as waiting until dropped (also when its wait is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("max_rate", &self.max_rate)
            .field("rate", &self.current_rate())
            .finish()
    }
}

impl RateLimiter {
    /// At most `max_rps` requests per second (bursts up to one second's worth).
    pub fn new(max_rps: f64) -> Self {
        let max_rate = max_rps.max(0.1);
        Self {
            max_rate,
            state: Mutex::new(State {
                rate: max_rate,
                tokens: max_rate.min(1.0),
                last: Instant::now(),
            }),
            queue: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            turns: Arc::default(),
        }
    }

    /// The turn of a reconcile of object `id` in `namespace` that is about to call SES.
    pub fn turn(&self, namespace: &str, id: &str) -> Turn {
        self.turns
            .take(namespace, id, self.current_rate(), Instant::now())
    }

    /// The rate the limiter allows now (requests per second).
    pub fn current_rate(&self) -> f64 {
        self.state.lock().map(|s| s.rate).unwrap_or(self.max_rate)
    }

    /// Whether calls are waiting for this budget now: for a token, or for their namespace's
    /// booked turn. What can wait (the bulk re-check) lets them go first.
    pub fn busy(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0 || self.turns.booked(Instant::now())
    }

    /// Waits for a token, after those who asked before.
    pub async fn acquire(&self) {
        let _waiting = Waiting::new(&self.waiting);
        let _in_line = self.queue.lock().await;
        loop {
            let wait = {
                let Ok(mut s) = self.state.lock() else { return };
                let now = Instant::now();
                let elapsed = now.duration_since(s.last).as_secs_f64();
                s.last = now;
                s.tokens = (s.tokens + elapsed * s.rate * PACING).min(s.rate.max(1.0));
                if s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.tokens) / (s.rate * PACING))
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn on_throttled(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rate = (s.rate / 2.0).max(self.max_rate / 20.0);
            s.tokens = s.tokens.min(0.0);
        }
    }

    fn on_success(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rate = (s.rate + self.max_rate / 50.0).min(self.max_rate);
        }
    }

    /// Runs `call` under the limiter, retrying throttling and unavailability with jittered
    /// exponential backoff. Other errors return at once.
    pub async fn call<T, F, Fut>(&self, operation: &'static str, mut call: F) -> Result<T, SesError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SesError>>,
    {
        let mut attempt = 0;
        loop {
            self.acquire().await;
            let result = call().await;
            attempt += 1;
            crate::metrics::ses_request(
                operation,
                result.as_ref().err().map_or("Success", SesError::reason),
            );
            match result {
                Ok(v) => {
                    self.on_success();
                    return Ok(v);
                }
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    if matches!(e, SesError::Throttled(_)) {
                        self.on_throttled();
                    }
                    tokio::time::sleep(jittered(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Full jitter: a random delay below `BASE_DELAY * 2^(attempt-1)`, capped.
fn jittered(attempt: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1 << (attempt - 1).min(10))
        .min(MAX_DELAY);
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    let fraction = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX);
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn the_bucket_paces_calls_at_the_rate() {
        let limiter = RateLimiter::new(5.0);
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        // One token up front, then 10 more at 5/s paced 5% under it: 2.1 seconds.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(2100) && elapsed <= Duration::from_millis(2120),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_ses_real_limit_requests_leave_more_than_a_second_apart() {
        let limiter = RateLimiter::new(1.0);
        let mut last = None;
        for _ in 0..5 {
            limiter.acquire().await;
            let now = tokio::time::Instant::now();
            if let Some(prev) = last {
                let gap: Duration = now - prev;
                assert!(gap >= Duration::from_millis(1050), "{gap:?}");
            }
            last = Some(now);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_is_busy_while_a_caller_waits_for_a_token() {
        let limiter = Arc::new(RateLimiter::new(1.0));
        assert!(!limiter.busy());
        limiter.acquire().await;
        assert!(!limiter.busy(), "nobody waits once the token is taken");
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(limiter.busy(), "a caller waits for the next token");
        waiter.await.expect("waiter");
        assert!(!limiter.busy());

        // A reconcile booked for a later turn counts too.
        let _first = limiter.turn("burst", "a");
        let _second = limiter.turn("burst", "b");
        assert!(matches!(limiter.turn("burst", "c"), Turn::Later(_)));
        assert!(limiter.busy());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_success_restores_it() {
        let limiter = RateLimiter::new(8.0);
        let calls = AtomicU32::new(0);
        let result = limiter
            .call("Test", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(SesError::Throttled("slow down".into()))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Halved twice, then one additive step back up.
        assert!(
            (limiter.current_rate() - (2.0 + 8.0 / 50.0)).abs() < 1e-9,
            "{}",
            limiter.current_rate()
        );
        for _ in 0..200 {
            limiter
                .call("Test", || async { Ok::<_, SesError>(()) })
                .await
                .unwrap();
        }
        assert_eq!(limiter.current_rate(), 8.0);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_transient_ones_give_up() {
        let limiter = RateLimiter::new(100.0);
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = limiter
            .call("Test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(SesError::Rejected("bad".into())) }
            })
            .await;
        assert_eq!(r, Err(SesError::Rejected("bad".into())));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = limiter
            .call("Test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(SesError::Unavailable("500".into())) }
            })
            .await;
        assert!(matches!(r, Err(SesError::Unavailable(_))));
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[test]
    fn jitter_stays_below_the_ceiling() {
        for attempt in 1..12 {
            let ceiling = BASE_DELAY
                .saturating_mul(1 << (attempt - 1).min(10))
                .min(MAX_DELAY);
            assert!(jittered(attempt) <= ceiling);
        }
    }
}
