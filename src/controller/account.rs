//! The SES account's standing at each location AdvancedSmtp EmailSettings send from: read with
//! `GetAccount` when a location is first used, then once every `--ses-account-interval` (12 h)
//! whatever the number of EmailSettings there — the first reconcile past the interval reads it,
//! the others wait for that read and share it. A failed read is tried again sooner
//! ([`RETRY_AFTER_FAILURE`]).

use super::backends::SesKey;
use crate::ses::{AccountStanding, SesApi, SesError};
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A read that failed is tried again after this (or at the interval, if shorter).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// One `GetAccount` answer and when it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub at: Timestamp,
    pub result: Result<AccountStanding, SesError>,
}

impl Reading {
    /// When it is to be read again.
    pub fn due(&self, every: Duration) -> Timestamp {
        let after = match self.result {
            Ok(_) => every,
            Err(_) => every.min(RETRY_AFTER_FAILURE),
        };
        super::sender_identity::decide::plus(self.at, after)
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Reading>>>;

/// The last reading of each location.
pub struct Accounts {
    every: Duration,
    slots: Mutex<HashMap<SesKey, Slot>>,
}

impl Accounts {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            slots: Mutex::default(),
        }
    }

    /// How often each location is read.
    pub fn every(&self) -> Duration {
        self.every
    }

    fn slot(&self, key: &SesKey) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    /// The standing at `key`: the last reading while it is current, else a fresh `GetAccount`
    /// through `ses` (callers for the same location meanwhile wait for it and share it).
    pub async fn read<S: SesApi>(&self, key: &SesKey, ses: &S, now: Timestamp) -> Reading {
        let slot = self.slot(key);
        let mut last = slot.lock().await;
        if let Some(reading) = last.as_ref()
            && reading.due(self.every) > now
        {
            return reading.clone();
        }
        let reading = Reading {
            at: now,
            result: ses.get_account().await,
        };
        *last = Some(reading.clone());
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ses::{IdentityDetails, ListedIdentity};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An SES that answers GetAccount with `fail` or production, slowly, counting calls.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        fail: bool,
    }

    impl SesApi for Counting {
        async fn get_account(&self) -> Result<AccountStanding, SesError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail {
                Err(SesError::Rejected("AccessDenied".into()))
            } else {
                Ok(AccountStanding::production())
            }
        }
        async fn create_identity(
            &self,
            _: &str,
            _: &[(String, String)],
            _: Option<&str>,
        ) -> Result<Option<IdentityDetails>, SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn get_identity(&self, _: &str) -> Result<IdentityDetails, SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn list_identities(
            &self,
            _: Option<String>,
        ) -> Result<(Vec<ListedIdentity>, Option<String>), SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn delete_identity(&self, _: &str) -> Result<(), SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn tag_identity(&self, _: &str, _: &[(String, String)]) -> Result<(), SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn untag_identity(&self, _: &str, _: &[String]) -> Result<(), SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn put_mail_from(&self, _: &str, _: Option<&str>) -> Result<(), SesError> {
            unreachable!("only GetAccount is called")
        }
        async fn put_dkim_key_length(&self, _: &str, _: &str) -> Result<(), SesError> {
            unreachable!("only GetAccount is called")
        }
    }

    fn key(region: &str) -> SesKey {
        SesKey {
            region: region.into(),
            role_arn: None,
            namespace: None,
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("time")
    }

    #[tokio::test]
    async fn many_readers_of_one_location_cost_one_call_per_interval() {
        let accounts = Accounts::new(Duration::from_secs(12 * 3600));
        let ses = Counting::default();
        let k = key("us-east-1");
        let readers: Vec<_> = (0..50).map(|_| accounts.read(&k, &ses, at(0))).collect();
        let readings = futures::future::join_all(readers).await;
        assert_eq!(ses.calls.load(Ordering::SeqCst), 1, "50 readers at once");
        assert!(readings.iter().all(|r| r.at == at(0) && r.result.is_ok()));
        // Just before the interval ends: still the same reading.
        accounts.read(&k, &ses, at(12 * 3600 - 1)).await;
        assert_eq!(ses.calls.load(Ordering::SeqCst), 1);
        // At the interval: one more.
        let again = accounts.read(&k, &ses, at(12 * 3600)).await;
        assert_eq!(again.at, at(12 * 3600));
        accounts.read(&k, &ses, at(12 * 3600 + 5)).await;
        assert_eq!(ses.calls.load(Ordering::SeqCst), 2);
        // Another location is read by itself.
        accounts
            .read(&key("eu-west-1"), &ses, at(12 * 3600 + 5))
            .await;
        assert_eq!(ses.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_read_is_tried_again_after_five_minutes() {
        let accounts = Accounts::new(Duration::from_secs(12 * 3600));
        let ses = Counting {
            fail: true,
            ..Default::default()
        };
        let k = key("us-east-1");
        let first = accounts.read(&k, &ses, at(0)).await;
        assert!(first.result.is_err());
        assert_eq!(first.due(accounts.every()), at(300));
        accounts.read(&k, &ses, at(299)).await;
        assert_eq!(ses.calls.load(Ordering::SeqCst), 1);
        accounts.read(&k, &ses, at(300)).await;
        assert_eq!(ses.calls.load(Ordering::SeqCst), 2);
    }
}
