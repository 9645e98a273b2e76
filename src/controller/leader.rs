//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: only the holder
//! reconciles; a standby takes over when the holder has not renewed for the lease duration
//! (measured on the standby's own clock from when it last saw the record change, so clock skew
//! between nodes does not matter); the holder releases the Lease when it shuts down.
//!
//! Writes carry the `resourceVersion` they read, so two candidates can never both win: the
//! API server refuses the second write with a conflict.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::time::{Duration, Instant};

/// Where and how to elect.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's holder identity (the pod name).
    pub identity: String,
    /// How long a standby waits after the last renewal it saw before taking over.
    pub duration: Duration,
    /// The holder gives up leadership when it could not renew for this long.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

/// What to do with the Lease as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Released, or not renewed for its duration: take it over.
    TakeOver,
    /// Someone else holds it.
    Wait,
}

/// Decides from the Lease's spec and how long ago its record last changed, as this replica
/// observed it.
pub fn decide(
    me: &str,
    spec: Option<&LeaseSpec>,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            if unchanged_for >= duration {
                Decision::TakeOver
            } else {
                Decision::Wait
            }
        }
    }
}

/// The part of a Lease whose change shows its holder is alive: holder and renew time.
type Record = Option<(Option<String>, Option<Timestamp>)>;

fn record(spec: Option<&LeaseSpec>) -> Record {
    spec.map(|s| {
        (
            s.holder_identity.clone(),
            s.renew_time.as_ref().map(|t| t.0),
        )
    })
}

/// A candidate for (or holder of) the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The record last seen and when (local monotonic clock).
    observed: Option<(Record, Instant)>,
    /// When this replica last renewed successfully.
    renewed: Option<Instant>,
}

/// Leadership was lost: another replica holds the Lease, or it could not be renewed in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lost the Lease {0}")]
pub struct Lost(pub String);

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed: None,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: i32::try_from(self.config.duration.as_secs()).ok(),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt to acquire or renew. Ok(true): we hold the Lease now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let name = self.config.name.clone();
        let current = self.api.get_opt(&name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let seen = record(spec);
        let now = Instant::now();
        let unchanged_for = match &self.observed {
            Some((r, at)) if *r == seen => now.duration_since(*at),
            _ => {
                self.observed = Some((seen, now));
                Duration::ZERO
            }
        };
        let decision = decide(
            &self.config.identity,
            spec,
            unchanged_for,
            self.config.duration,
        );
        let result = match (decision, current) {
            (Decision::Wait, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(0, None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew | Decision::TakeOver, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                let (transitions, acquired) = if decision == Decision::Renew {
                    (old.lease_transitions.unwrap_or(0), old.acquire_time)
                } else {
                    (old.lease_transitions.unwrap_or(0) + 1, None)
                };
                lease.spec = Some(self.spec(transitions, acquired));
                // resourceVersion stays set: a concurrent writer makes this a conflict.
                self.api
                    .replace(&name, &PostParams::default(), &lease)
                    .await
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(lease) => {
                let now = Instant::now();
                self.observed = Some((record(lease.spec.as_ref()), now));
                self.renewed = Some(now);
                if decision != Decision::Renew {
                    tracing::info!(
                        lease = %self.config.name,
                        namespace = %self.config.namespace,
                        identity = %self.config.identity,
                        "acquired the Lease: leading"
                    );
                }
                Ok(true)
            }
            // Another candidate wrote first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease. `standby` is called with whether the Lease
    /// could be read (a healthy standby).
    pub async fn acquire(&mut self, standby: impl Fn(bool)) {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {
                    standby(true);
                    if !waiting_logged {
                        tracing::info!(lease = %self.config.name, "another replica leads: standing by");
                        waiting_logged = true;
                    }
                }
                Err(e) => {
                    standby(false);
                    tracing::warn!(error = %e, "cannot read or write the Lease");
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the Lease every retry period; returns when leadership is lost.
    pub async fn hold(&mut self) -> Lost {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => {}
                Ok(false) => {
                    return Lost(format!(
                        "{}/{}: another replica holds it",
                        self.config.namespace, self.config.name
                    ));
                }
                Err(e) => {
                    let since = self.renewed.map_or(Duration::MAX, |t| t.elapsed());
                    tracing::warn!(error = %e, "cannot renew the Lease");
                    if since >= self.config.renew_deadline {
                        return Lost(format!(
                            "{}/{}: not renewed for {}s",
                            self.config.namespace,
                            self.config.name,
                            since.as_secs()
                        ));
                    }
                }
            }
        }
    }

    /// Gives the Lease up (shutdown), so a standby takes over at once instead of after the
    /// lease duration.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        tracing::info!(lease = %self.config.name, "released the Lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: seconds,
            ..Default::default()
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn a_missing_lease_is_created_and_our_own_is_renewed() {
        assert_eq!(decide("a", None, Duration::ZERO, D), Decision::Create);
        let mine = held_by(Some("a"), Some(15));
        // Ours even when "expired": a restarted pod keeps its name and its leadership.
        assert_eq!(decide("a", Some(&mine), D * 10, D), Decision::Renew);
    }

    #[test]
    fn another_holder_is_waited_for_until_its_lease_runs_out() {
        let theirs = held_by(Some("b"), Some(10));
        assert_eq!(
            decide("a", Some(&theirs), Duration::from_secs(9), D),
            Decision::Wait
        );
        assert_eq!(
            decide("a", Some(&theirs), Duration::from_secs(10), D),
            Decision::TakeOver
        );
        // Without a duration on the Lease, ours applies.
        let no_duration = held_by(Some("b"), None);
        assert_eq!(
            decide("a", Some(&no_duration), Duration::from_secs(14), D),
            Decision::Wait
        );
        assert_eq!(decide("a", Some(&no_duration), D, D), Decision::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        for released in [held_by(None, Some(1)), held_by(Some(""), Some(1))] {
            assert_eq!(
                decide("a", Some(&released), Duration::ZERO, D),
                Decision::TakeOver
            );
        }
    }
}
