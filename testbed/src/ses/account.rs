//! The SES account's standing in each region, as GetAccount reports it and as sending obeys it.
//!
//! Sources (SES Developer Guide and SES v2 API Reference, checked December 2026):
//! * **Sandbox** ("Request production access (Moving out of the Amazon SES sandbox)"): a new
//!   account is in the sandbox *in each region*; there it may send only to verified
//!   identities and to the mailbox simulator, at most 200 messages in 24 hours and 1 message a
//!   second. Production access is granted per region; `GetAccount.ProductionAccessEnabled`
//!   says which.
//! * **Enforcement** (`GetAccount.EnforcementStatus`): `HEALTHY`; `PROBATION` — the account is
//!   under review and still sends; `SHUTDOWN` — sending is stopped. `SendingEnabled` false
//!   means sending is paused (by AWS or by the account's own `PutAccountSendingAttributes`).
//! * **Send quota** (`GetAccount.SendQuota`): `Max24HourSend`, `MaxSendRate`,
//!   `SentLast24Hours`; a production account starts at 50,000 a day and 14 a second in most
//!   regions.
//!
//! The stand-in's account starts with production access in every region, so that tests not
//! about the account see what they saw before; `PUT /ses/account` puts a region in the sandbox,
//! on probation, shut down or paused.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::errors::SesError;
use super::faults::lock;

/// The sandbox's quota: 200 messages in 24 hours.
pub const SANDBOX_MAX_24_HOUR_SEND: f64 = 200.0;
/// The sandbox's rate: 1 message a second.
pub const SANDBOX_MAX_SEND_RATE: f64 = 1.0;
/// A new production account's quota in most regions.
pub const PRODUCTION_MAX_24_HOUR_SEND: f64 = 50_000.0;
/// A new production account's rate in most regions.
pub const PRODUCTION_MAX_SEND_RATE: f64 = 14.0;

/// `GetAccount.EnforcementStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Enforcement {
    Healthy,
    Probation,
    Shutdown,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::Probation => "PROBATION",
            Self::Shutdown => "SHUTDOWN",
        }
    }
}

/// One region's account standing.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standing {
    pub production_access_enabled: bool,
    pub sending_enabled: bool,
    pub enforcement_status: Enforcement,
    pub max_24_hour_send: f64,
    pub max_send_rate: f64,
}

impl Standing {
    /// A region with production access, healthy and sending.
    pub fn production() -> Self {
        Self {
            production_access_enabled: true,
            sending_enabled: true,
            enforcement_status: Enforcement::Healthy,
            max_24_hour_send: PRODUCTION_MAX_24_HOUR_SEND,
            max_send_rate: PRODUCTION_MAX_SEND_RATE,
        }
    }

    /// A new account's region: the sandbox's limits.
    pub fn sandbox() -> Self {
        Self {
            production_access_enabled: false,
            max_24_hour_send: SANDBOX_MAX_24_HOUR_SEND,
            max_send_rate: SANDBOX_MAX_SEND_RATE,
            ..Self::production()
        }
    }

    /// Why this region may not send at all now, as SES's SendEmail refuses it, or None.
    pub fn refusal(&self) -> Option<SesError> {
        // SES v2 API Reference, SendEmail, Errors: AccountSuspendedException ("the account's
        // ability to send email has been permanently restricted") and SendingPausedException
        // ("the account's ability to send email is currently paused"), both HTTP 400.
        if self.enforcement_status == Enforcement::Shutdown {
            Some(SesError::AccountSuspended(
                "The message can't be sent because the account's ability to send email has been permanently restricted.".into(),
            ))
        } else if !self.sending_enabled {
            Some(SesError::SendingPaused(
                "The message can't be sent because the account's ability to send email is currently paused.".into(),
            ))
        } else {
            None
        }
    }
}

/// A change to one region's standing (`PUT /ses/account`); what is absent stays as it was,
/// except that granting or withdrawing production access resets the quota to that mode's
/// unless the quota is given too.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StandingChange {
    pub region: String,
    pub production_access_enabled: Option<bool>,
    pub sending_enabled: Option<bool>,
    pub enforcement_status: Option<Enforcement>,
    pub max_24_hour_send: Option<f64>,
    pub max_send_rate: Option<f64>,
}

/// The account's standing in every region.
#[derive(Default)]
pub struct Account {
    regions: Mutex<HashMap<String, Standing>>,
}

impl Account {
    /// The standing in `region` (production unless changed).
    pub fn standing(&self, region: &str) -> Standing {
        lock(&self.regions)
            .get(region)
            .cloned()
            .unwrap_or_else(Standing::production)
    }

    /// Applies `change`; returns the region's new standing.
    pub fn change(&self, change: StandingChange) -> Result<Standing, String> {
        if change.region.is_empty() {
            return Err("region is required".into());
        }
        for (name, value) in [
            ("max24HourSend", change.max_24_hour_send),
            ("maxSendRate", change.max_send_rate),
        ] {
            if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(format!("{name} must be a number of at least 0"));
            }
        }
        let mut regions = lock(&self.regions);
        let standing = regions
            .entry(change.region.clone())
            .or_insert_with(Standing::production);
        if let Some(production) = change.production_access_enabled
            && production != standing.production_access_enabled
        {
            let mode = if production {
                Standing::production()
            } else {
                Standing::sandbox()
            };
            standing.production_access_enabled = production;
            standing.max_24_hour_send = mode.max_24_hour_send;
            standing.max_send_rate = mode.max_send_rate;
        }
        if let Some(enabled) = change.sending_enabled {
            standing.sending_enabled = enabled;
        }
        if let Some(status) = change.enforcement_status {
            standing.enforcement_status = status;
        }
        if let Some(max) = change.max_24_hour_send {
            standing.max_24_hour_send = max;
        }
        if let Some(rate) = change.max_send_rate {
            standing.max_send_rate = rate;
        }
        Ok(standing.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(region: &str) -> StandingChange {
        StandingChange {
            region: region.into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_region_starts_in_production_and_changes_alone() {
        let account = Account::default();
        assert_eq!(account.standing("us-east-1"), Standing::production());
        let sandboxed = account
            .change(StandingChange {
                production_access_enabled: Some(false),
                ..change("eu-west-1")
            })
            .unwrap();
        assert_eq!(sandboxed, Standing::sandbox());
        assert_eq!(sandboxed.max_24_hour_send, 200.0);
        assert_eq!(sandboxed.max_send_rate, 1.0);
        assert_eq!(account.standing("us-east-1"), Standing::production());
        let granted = account
            .change(StandingChange {
                production_access_enabled: Some(true),
                ..change("eu-west-1")
            })
            .unwrap();
        assert_eq!(
            granted,
            Standing::production(),
            "quota back to production's"
        );
    }

    #[test]
    fn shutdown_and_pause_refuse_sending_with_ses_error_codes() {
        let account = Account::default();
        assert_eq!(account.standing("us-east-1").refusal(), None);
        let probation = account
            .change(StandingChange {
                enforcement_status: Some(Enforcement::Probation),
                ..change("us-east-1")
            })
            .unwrap();
        assert_eq!(probation.refusal(), None, "probation still sends");
        let paused = account
            .change(StandingChange {
                sending_enabled: Some(false),
                enforcement_status: Some(Enforcement::Healthy),
                ..change("us-east-1")
            })
            .unwrap();
        assert_eq!(paused.refusal().unwrap().code(), "SendingPausedException");
        let shut = account
            .change(StandingChange {
                enforcement_status: Some(Enforcement::Shutdown),
                ..change("us-east-1")
            })
            .unwrap();
        assert_eq!(shut.refusal().unwrap().code(), "AccountSuspendedException");
    }

    #[test]
    fn a_quota_given_with_the_change_wins_and_bad_ones_are_refused() {
        let account = Account::default();
        let s = account
            .change(StandingChange {
                production_access_enabled: Some(false),
                max_24_hour_send: Some(1000.0),
                ..change("us-east-1")
            })
            .unwrap();
        assert_eq!((s.max_24_hour_send, s.max_send_rate), (1000.0, 1.0));
        assert!(
            account
                .change(StandingChange {
                    max_send_rate: Some(-1.0),
                    ..change("us-east-1")
                })
                .is_err()
        );
        assert!(account.change(change("")).is_err());
    }
}
