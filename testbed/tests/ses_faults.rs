//! Injected faults seen through the real SDK: throttling (`TooManyRequestsException`, 429),
//! 5xx errors at the configured rates, added latency, and the counters that record them.

mod ses_support;

use std::time::{Duration, Instant};

use serde_json::json;
use ses_support::{Control, ses_client, start};

const CALLS: usize = 400;

#[tokio::test]
async fn throttling_and_errors_at_the_configured_rates() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    control
        .set_faults(json!({ "throttleRate": 0.25, "errorRate": 0.10, "latencyMs": 0, "seed": 42 }))
        .await;

    let (mut ok, mut throttled, mut failed) = (0usize, 0usize, 0usize);
    for _ in 0..CALLS {
        match client.get_account().send().await {
            Ok(_) => ok += 1,
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_too_many_requests_exception())
                {
                    assert_eq!(status, Some(429));
                    throttled += 1;
                } else {
                    assert_eq!(status, Some(500), "unexpected error {err:?}");
                    failed += 1;
                }
            }
        }
    }
    let rate = |n: usize| n as f64 / CALLS as f64;
    assert!(
        (rate(throttled) - 0.25).abs() < 0.07,
        "throttled {throttled}/{CALLS}"
    );
    assert!(
        (rate(failed) - 0.10).abs() < 0.05,
        "failed {failed}/{CALLS}"
    );
    assert_eq!(ok + throttled + failed, CALLS);

    // The counters saw exactly the same.
    let calls = control.get("/ses/calls").await;
    let get_account = &calls["calls"]["GetAccount"];
    assert_eq!(get_account["Success"].as_u64(), Some(ok as u64));
    assert_eq!(
        get_account["TooManyRequestsException"].as_u64(),
        Some(throttled as u64)
    );
    assert_eq!(get_account["InternalFailure"].as_u64(), Some(failed as u64));

    // The same seed replays the same sequence of decisions.
    control
        .set_faults(json!({ "throttleRate": 0.25, "errorRate": 0.10, "latencyMs": 0, "seed": 42 }))
        .await;
    let mut replay_throttled = 0;
    for _ in 0..CALLS {
        if let Err(err) = client.get_account().send().await
            && err
                .as_service_error()
                .is_some_and(|e| e.is_too_many_requests_exception())
        {
            replay_throttled += 1;
        }
    }
    assert_eq!(replay_throttled, throttled);

    // Faults off: every call succeeds.
    control
        .set_faults(json!({ "throttleRate": 0.0, "errorRate": 0.0, "latencyMs": 0 }))
        .await;
    for _ in 0..50 {
        client.get_account().send().await.expect("no faults");
    }
}

#[tokio::test]
async fn sdk_retries_recover_from_throttling() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    control
        .set_faults(json!({ "throttleRate": 0.5, "seed": 3 }))
        .await;
    // The default SDK configuration retries throttled calls with backoff.
    ses_support::install_crypto();
    let shared = aws_config::defaults(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .http_client(email_operator::ses::aws::https())
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .endpoint_url(bed.ses.endpoint_url())
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "AKID", "secret", None, None, "test",
        ))
        .retry_config(
            aws_sdk_sesv2::config::retry::RetryConfig::standard()
                .with_max_attempts(10)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .load()
        .await;
    let client = aws_sdk_sesv2::Client::new(&shared);
    for _ in 0..10 {
        client
            .get_account()
            .send()
            .await
            .expect("retried until served");
    }
    let calls = control.get("/ses/calls").await;
    assert_eq!(calls["calls"]["GetAccount"]["Success"], 10);
    assert!(
        calls["calls"]["GetAccount"]["TooManyRequestsException"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
}

#[tokio::test]
async fn latency_is_added_to_every_call_and_bad_settings_are_rejected() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    client.get_account().send().await.expect("warm up");

    control.set_faults(json!({ "latencyMs": 150 })).await;
    let started = Instant::now();
    for _ in 0..4 {
        client.get_account().send().await.expect("slow call");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    let faults = control.get("/ses/faults").await;
    assert_eq!(faults["latencyMs"], 150);

    for bad in [
        json!({ "throttleRate": 1.5 }),
        json!({ "throttleRate": 0.7, "errorRate": 0.7 }),
        json!({ "throttleRate": "high" }),
        json!({ "unknown": 1 }),
    ] {
        let (status, _) = control
            .call(reqwest::Method::PUT, "/ses/faults", Some(bad.clone()))
            .await;
        assert!((400..500).contains(&status), "{bad} accepted with {status}");
    }
}
