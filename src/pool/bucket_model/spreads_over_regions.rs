//! Several regions, one lane each: their quotas add up and every attempt is counted in
//! the region it went to; a region without the model drops out while the others go on;
//! when every region denies the model, the run stops and leaves the rest for a rerun.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Bedrockish, Bucket, CallOutcome, ErrorKind, Quota, Seen, Task, lanes, start, tasks};

/// Runs `tasks` over one lane per service; returns the outcomes and each service's counters
/// at `at` seconds.
async fn drive_lanes(
    services: Vec<Bedrockish>,
    tasks: Vec<Task>,
    at: u64,
) -> (Vec<CallOutcome>, Vec<Seen>) {
    let (pool, mut outcome_rx) = start(lanes(services.clone()), 4096, tasks);
    let reading = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(at)).await;
        services.iter().map(Bedrockish::seen).collect::<Vec<_>>()
    });
    let mut outcomes = Vec::new();
    while let Some(outcome) = outcome_rx.recv().await {
        outcomes.push(outcome);
    }
    pool.await.unwrap();
    (outcomes, reading.await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn three_regions_add_their_quotas_up() {
    let services: Vec<Bedrockish> = [30_000, 60_000, 90_000]
        .into_iter()
        .map(|tpm| Bedrockish::new(tpm, 300, 80.0))
        .collect();
    let (outcomes, seen) = drive_lanes(services.clone(), tasks(2500, 220, 2000, 200), 90).await;
    assert_eq!(outcomes.len(), 2500);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    let tokens: f64 = seen.iter().map(|s| s.tokens).sum();
    let allowed = 180_000.0 * (1.0 + 90.0 / 60.0);
    let requests: u64 = seen.iter().map(|s| s.requests).sum();
    let throttles: u64 = seen.iter().map(|s| s.throttles).sum();
    let goodput = tokens / allowed;
    let throttled = throttles as f64 / requests as f64;
    eprintln!("three regions: goodput {goodput:.3}, throttled {throttled:.4} {seen:?}");
    assert!(goodput >= 0.95, "goodput {goodput:.3}");
    assert!(throttled <= 0.02, "throttled {throttled:.4}");
    // Every attempt is counted in the region it went to.
    for (i, service) in services.iter().enumerate() {
        let name = format!("region-{i}");
        let (attempts, throttles) = outcomes
            .iter()
            .flat_map(|o| &o.regions)
            .filter(|t| t.region == name)
            .fold((0, 0), |(a, t), r| {
                (a + r.attempts as u64, t + r.throttles as u64)
            });
        let all = service.seen();
        assert_eq!(
            (attempts, throttles),
            (all.requests, all.throttles),
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn every_lane_keeps_to_the_target_and_the_largest_no_worse_than_the_smallest() {
    // Three quotas. Each lane meets its empty bucket at the pace its own ramp reached, the
    // largest one last and fastest, with whatever it sent before the throttle came back:
    // at once on loopback, after 50 ms over a real network.
    for (delay, most_throttled) in [(0, 0.01), (50, 0.015)] {
        let services: Vec<Bedrockish> = [30_000, 60_000, 90_000]
            .into_iter()
            .map(|tpm| {
                let mut service = Bedrockish::new(tpm, 300, 80.0);
                service.throttle_delay = Duration::from_millis(delay);
                service
            })
            .collect();
        let (outcomes, seen) = drive_lanes(services, tasks(2500, 220, 2000, 200), 90).await;
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        let throttled: Vec<f64> = seen
            .iter()
            .map(|s| s.throttles as f64 / s.requests as f64)
            .collect();
        eprintln!("lanes, throttles after {delay} ms: throttled {throttled:.4?} {seen:?}");
        for (lane, share) in throttled.iter().enumerate() {
            assert!(
                *share <= most_throttled,
                "lane {lane}: throttled {share:.4}"
            );
        }
        // No more than the smallest, give or take a fifth of a point.
        assert!(
            throttled[2] <= throttled[0] + 0.002,
            "the largest lane {:.4}, the smallest {:.4}",
            throttled[2],
            throttled[0]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_region_without_the_model_drops_out_and_the_others_go_on() {
    let mut denied = Bedrockish::new(60_000, 100, 1000.0);
    denied.deny = true;
    let open = Bedrockish::new(600_000, 100, 1000.0);
    let (outcomes, _) = drive_lanes(vec![denied.clone(), open], tasks(200, 200, 400, 100), 1).await;
    assert_eq!(outcomes.len(), 200);
    for outcome in &outcomes {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert_eq!(outcome.region, "region-1");
    }
    assert!(
        denied.seen().requests <= 16,
        "dropped after the first answers: {}",
        denied.seen().requests
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_region_denies_the_model_the_run_stops() {
    let mut first = Bedrockish::new(60_000, 100, 1000.0);
    first.deny = true;
    let mut second = first.clone();
    second.quota = Arc::new(Mutex::new(Quota {
        bucket: Bucket::per_minute(60_000, Instant::now().into_std()),
        seen: Seen::default(),
    }));
    let (outcomes, seen) = drive_lanes(vec![first, second], tasks(50, 200, 400, 100), 600).await;
    assert!(
        outcomes.iter().any(|o| o
            .result
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::AccessDenied)),
        "the last region's denial is fatal"
    );
    // The run stops: records not yet sent are not sent (they stay for a rerun), so fewer
    // than the 50 come back and the regions saw only the calls before the stop.
    let requests: u64 = seen.iter().map(|s| s.requests).sum();
    assert!(
        outcomes.len() < 50 && requests < 50,
        "{} outcomes, {requests} requests after a fatal denial",
        outcomes.len()
    );
}
