//! The bench's comparison baseline: a controller that polls every identity with
//! `GetEmailIdentity` on a fixed period, as per-resource-polling controllers do (Crossplane reads
//! each managed resource every 10 minutes). It reads SES with the real SDK, as such a
//! controller would, so its calls are counted by the SES stand-in like the operator's.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};

/// Polls each of `identities` (region, name) once per `period`, evenly spread, until aborted.
pub async fn poll(endpoint: String, identities: Vec<(String, String)>, period: Duration) {
    if identities.is_empty() {
        return;
    }
    let mut clients: HashMap<String, aws_sdk_sesv2::Client> = HashMap::new();
    for (region, _) in &identities {
        if !clients.contains_key(region) {
            let conf = aws_config::defaults(BehaviorVersion::latest())
                .http_client(email_operator::ses::aws::https())
                .region(Region::new(region.clone()))
                .endpoint_url(&endpoint)
                .credentials_provider(Credentials::new(
                    "AKIDBASELINE",
                    "baseline",
                    None,
                    None,
                    "bench",
                ))
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .load()
                .await;
            clients.insert(region.clone(), aws_sdk_sesv2::Client::new(&conf));
        }
    }
    let gap = period / identities.len() as u32;
    loop {
        for (region, name) in &identities {
            let started = tokio::time::Instant::now();
            if let Some(client) = clients.get(region) {
                let _ = client
                    .get_email_identity()
                    .email_identity(name)
                    .send()
                    .await;
            }
            tokio::time::sleep(gap.saturating_sub(started.elapsed())).await;
        }
    }
}
