//! Namespaces take turns at an account and region's SES budget.
//!
//! The rate limiter alone shares calls first come, first served, and so do the controller's
//! reconcile slots: while one namespace's thousands of new identities are being created at 1
//! call a second, an identity applied in another namespace would queue behind all of them.
//! Here a namespace may have only a few reconciles calling SES at once ([`per_namespace`]);
//! the others are booked a time of their own, spaced so that every active namespace gets its
//! share of the rate, and sleep in the controller's queue until then instead of holding a
//! reconcile slot. A namespace with nothing waiting goes in at once, and the limiter's queue
//! is first come, first served, so its call waits behind at most the few calls already in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A reconcile's turn: go (holding the permit while it calls SES), or come back after this
/// long.
#[derive(Debug)]
pub enum Turn {
    Go(Permit),
    Later(Duration),
}

/// Held while a reconcile calls SES; its namespace's place is given back when dropped.
#[derive(Debug)]
pub struct Permit {
    turns: Option<Arc<Turns>>,
    namespace: String,
}

impl Permit {
    /// A permit that counts nowhere (SES clients without turns, such as test fakes).
    pub fn free() -> Self {
        Self {
            turns: None,
            namespace: String::new(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(turns) = &self.turns {
            let mut s = turns.lock();
            if let Some(n) = s.inside.get_mut(&self.namespace) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.inside.remove(&self.namespace);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Reconciles of each namespace calling SES now.
    inside: HashMap<String, usize>,
    /// The last time booked for each namespace's waiting reconciles.
    horizon: HashMap<String, Instant>,
    /// The time booked for each waiting reconcile (by object uid), and when it last asked.
    booked: HashMap<String, Booking>,
}

#[derive(Debug, Clone, Copy)]
struct Booking {
    at: Instant,
    asked: Instant,
}

/// The turns of one account and region.
#[derive(Debug, Default)]
pub struct Turns {
    state: Mutex<State>,
}

/// How many reconciles of one namespace may call SES at once at `rate` calls a second: two
/// at SES's 1/s (one calling, one ready for the next token), more at higher limits, never
/// more than 8 (half the default reconcile slots).
pub fn per_namespace(rate: f64) -> usize {
    ((rate * 2.0).ceil() as usize).clamp(2, 8)
}

/// A booking this far past its time is dropped (its object was deleted, or reconciled for
/// another reason and never came back).
const STALE_BOOKING: Duration = Duration::from_secs(600);

/// A booking whose time has come counts as waiting while its reconcile keeps asking (every
/// few seconds while its namespace is full); one not asked for this long is not waiting.
const ASKED_RECENTLY: Duration = Duration::from_secs(60);

impl Turns {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a reconcile waits for a turn: booked for later, or past its time and still
    /// asking (a deleted object's booking stops counting once it stops asking).
    pub fn booked(&self, now: Instant) -> bool {
        self.lock()
            .booked
            .values()
            .any(|b| b.at > now || now.saturating_duration_since(b.asked) < ASKED_RECENTLY)
    }

    /// The turn of the reconcile of object `id` in `namespace`, at `rate` calls a second.
    pub fn take(self: &Arc<Self>, namespace: &str, id: &str, rate: f64, now: Instant) -> Turn {
        let mut s = self.lock();
        let inside = s.inside.get(namespace).copied().unwrap_or(0);
        let room = inside < per_namespace(rate);
        let go = |s: &mut State| {
            *s.inside.entry(namespace.to_string()).or_default() += 1;
            Turn::Go(Permit {
                turns: Some(self.clone()),
                namespace: namespace.to_string(),
            })
        };
        // Every namespace calling or waiting shares the rate; this one counts too.
        let active = s
            .inside
            .keys()
            .chain(s.horizon.iter().filter(|(_, t)| **t > now).map(|(k, _)| k))
            .filter(|k| k.as_str() != namespace)
            .collect::<std::collections::HashSet<_>>()
            .len()
            + 1;
        let spacing = Duration::from_secs_f64(active as f64 / rate.max(0.01));
        if let Some(booking) = s.booked.get_mut(id) {
            booking.asked = now;
            let at = booking.at;
            if at > now {
                return Turn::Later(at - now);
            }
            if room {
                s.booked.remove(id);
                return go(&mut s);
            }
            // Its time came but its namespace is still full: soon again, keeping its place.
            return Turn::Later(spacing);
        }
        if room {
            return go(&mut s);
        }
        if s.booked.len() % 1024 == 1023 {
            s.booked
                .retain(|_, b| now.duration_since(b.at) < STALE_BOOKING);
            s.horizon
                .retain(|_, t| now.duration_since(*t) < STALE_BOOKING);
        }
        let from = s.horizon.get(namespace).copied().unwrap_or(now).max(now);
        let at = from + spacing;
        s.horizon.insert(namespace.to_string(), at);
        s.booked.insert(id.to_string(), Booking { at, asked: now });
        Turn::Later(at - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(t: Turn) -> Permit {
        match t {
            Turn::Go(p) => p,
            Turn::Later(d) => panic!("told to come back after {d:?}"),
        }
    }

    fn later(t: Turn) -> Duration {
        match t {
            Turn::Later(d) => d,
            Turn::Go(_) => panic!("let in"),
        }
    }

    #[test]
    fn a_busy_namespace_is_booked_in_turn_and_another_goes_in_at_once() {
        let turns = Arc::new(Turns::default());
        let now = Instant::now();
        let a = go(turns.take("burst", "b0", 1.0, now));
        let _b = go(turns.take("burst", "b1", 1.0, now));
        // Full at 1/s: the rest are booked a second apart (one namespace active).
        assert_eq!(
            later(turns.take("burst", "b2", 1.0, now)),
            Duration::from_secs(1)
        );
        assert_eq!(
            later(turns.take("burst", "b3", 1.0, now)),
            Duration::from_secs(2)
        );
        // Another namespace is let in at once ...
        let lone = go(turns.take("lone", "l0", 1.0, now));
        // ... and from now on the two share the rate: the burst's next booking is 2 s on.
        assert_eq!(
            later(turns.take("burst", "b4", 1.0, now)),
            Duration::from_secs(4)
        );
        drop(lone);

        // Early: told when. On time, with room: in.
        assert_eq!(
            later(turns.take("burst", "b2", 1.0, now + Duration::from_millis(400))),
            Duration::from_millis(600)
        );
        drop(a);
        let _b2 = go(turns.take("burst", "b2", 1.0, now + Duration::from_secs(1)));
        // On time without room: soon again, keeping its booking.
        let at = now + Duration::from_secs(2);
        assert!(later(turns.take("burst", "b3", 1.0, at)) <= Duration::from_secs(2));
        assert!(matches!(
            turns.take("burst", "b3", 1.0, at + Duration::from_secs(5)),
            Turn::Later(_)
        ));
    }

    #[test]
    fn a_dropped_permit_gives_its_place_back() {
        let turns = Arc::new(Turns::default());
        let now = Instant::now();
        let permits: Vec<_> = (0..per_namespace(1.0))
            .map(|i| go(turns.take("ns", &format!("o{i}"), 1.0, now)))
            .collect();
        assert!(matches!(turns.take("ns", "x", 1.0, now), Turn::Later(_)));
        drop(permits);
        let _p = go(turns.take("ns", "y", 1.0, now));
    }

    #[test]
    fn a_booking_counts_as_waiting_while_its_reconcile_keeps_asking() {
        let turns = Arc::new(Turns::default());
        let now = Instant::now();
        let secs = Duration::from_secs;
        assert!(!turns.booked(now));
        let _a = go(turns.take("ns", "a", 1.0, now));
        let _b = go(turns.take("ns", "b", 1.0, now));
        assert_eq!(later(turns.take("ns", "kept", 1.0, now)), secs(1));
        assert_eq!(later(turns.take("ns", "deleted", 1.0, now)), secs(2));
        assert!(turns.booked(now), "booked for later");
        // Past their time, the namespace still full: one keeps asking, the other never does
        // (its object was deleted).
        for t in (3..=90).step_by(3) {
            let _ = later(turns.take("ns", "kept", 1.0, now + secs(t)));
        }
        assert!(turns.booked(now + secs(90)), "still asking: waiting");
        assert!(
            !turns.booked(now + secs(151)),
            "neither asked for a minute: nobody waits"
        );
    }

    #[test]
    fn higher_limits_let_more_in_at_once() {
        assert_eq!(per_namespace(1.0), 2);
        assert_eq!(per_namespace(2.0), 4);
        assert_eq!(per_namespace(1000.0), 8);
    }
}
