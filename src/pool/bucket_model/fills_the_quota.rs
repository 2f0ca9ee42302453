//! The pool uses a quota as it is meant to be used: from a cold start, behind a slow
//! model, when the quota drops and comes back, and when throttles take a network round
//! trip to come back, the tokens admitted reach the share of the quota targeted with few
//! attempts throttled, and every record ends ok.

use std::time::Duration;

use super::{Bedrockish, Ran, Seen, Task, drive, tasks};

/// Goodput between two readings: tokens admitted / what the quota allowed, where the first
/// reading is the cold start (a full bucket: one more minute of quota).
fn goodput(from: &Seen, to: &Seen, tpm: f64, secs: f64, cold: bool) -> f64 {
    let allowed = tpm / 60.0 * secs + if cold { tpm } else { 0.0 };
    (to.tokens - from.tokens) / allowed
}

fn throttled(from: &Seen, to: &Seen) -> f64 {
    (to.throttles - from.throttles) as f64 / (to.requests - from.requests).max(1) as f64
}

fn assert_every_record_ok(ran: &Ran, n: usize) {
    assert_eq!(ran.outcomes.len(), n);
    for outcome in &ran.outcomes {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }
}

/// Runs `tasks` against `service` from a cold start and checks, over the first `window`
/// seconds, that every record is ok and the quota of `tpm` was used as targeted.
async fn assert_cold_start(
    name: &str,
    service: Bedrockish,
    tasks: Vec<Task>,
    tpm: f64,
    window: u64,
    (min_goodput, max_throttled): (f64, f64),
) {
    let n = tasks.len();
    let ran = drive(service, tasks, &[0, window], &[]).await;
    assert_every_record_ok(&ran, n);
    let [start, end] = &ran.checkpoints[..] else {
        panic!("two readings")
    };
    let goodput = goodput(start, end, tpm, window as f64, true);
    let throttled = throttled(start, end);
    eprintln!("{name}: goodput {goodput:.3}, throttled {throttled:.4} {end:?}");
    assert!(goodput >= min_goodput, "{name}: goodput {goodput:.3}");
    assert!(
        throttled <= max_throttled,
        "{name}: throttled {throttled:.4}"
    );
}

#[tokio::test(start_paused = true)]
async fn tight_quota_from_a_cold_start() {
    // 60k TPM, 300 ms to first token, 80 tokens/s, ~1,100 characters, max tokens 200.
    let service = Bedrockish::new(60_000, 300, 80.0);
    let tasks = tasks(600, 220, 2000, 200);
    assert_cold_start("tight", service, tasks, 60_000.0, 120, (0.98, 0.01)).await;
}

#[tokio::test(start_paused = true)]
async fn large_quota_behind_a_slow_model() {
    // 1.2M TPM, 1.5 s to first token: a few hundred calls must be in flight.
    let service = Bedrockish::new(1_200_000, 1500, 80.0);
    let tasks = tasks(7000, 1500, 2500, 200);
    assert_cold_start("large", service, tasks, 1_200_000.0, 90, (0.98, 0.01)).await;
}

#[tokio::test(start_paused = true)]
async fn quota_that_drops_and_comes_back() {
    // 120k TPM, 40k from 40 s, then 120k again; the bucket keeps its level at each change,
    // as the service's does. The return comes at each second from 80 s to 86 s, so that it
    // meets the probes at every point of their cycle.
    for ret in 80..=86 {
        let service = Bedrockish::new(120_000, 300, 80.0);
        let ran = drive(
            service,
            tasks(1500, 220, 2000, 200),
            &[0, 40, 60, 80, ret, ret + 10, ret + 60],
            &[(40, 40_000), (ret, 120_000)],
        )
        .await;
        assert_every_record_ok(&ran, 1500);
        let c = &ran.checkpoints;
        let first = goodput(&c[0], &c[1], 120_000.0, 40.0, true);
        let low = goodput(&c[2], &c[3], 40_000.0, 20.0, false);
        let back = goodput(&c[4], &c[6], 120_000.0, 60.0, false);
        let back_after_10 = goodput(&c[5], &c[6], 120_000.0, 50.0, false);
        let throttled_back = throttled(&c[4], &c[6]);
        eprintln!(
            "drop, back at {ret} s: goodput {first:.3} / {low:.3} / {back:.3} (from 10 s \
             after the return {back_after_10:.3}), throttled {:.4} {:.4} {throttled_back:.4}",
            throttled(&c[0], &c[1]),
            throttled(&c[1], &c[4]),
        );
        assert!(first >= 0.95, "first phase {first:.3}");
        assert!(low >= 0.9, "within 20 s of the drop {low:.3}");
        // A quota restored to 3x is used at 95% of its ceiling within 10 s, with at most 1%
        // of the phase's requests throttled.
        assert!(
            back_after_10 >= 0.95,
            "back at {ret} s: from 10 s after the return {back_after_10:.3}"
        );
        assert!(
            throttled_back <= 0.01,
            "back at {ret} s: throttled after the return {throttled_back:.4}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn slow_throttles_over_a_network() {
    // Like the tight quota, but throttles take 50 ms to come back.
    let mut service = Bedrockish::new(60_000, 300, 80.0);
    service.throttle_delay = Duration::from_millis(50);
    let tasks = tasks(600, 220, 2000, 200);
    assert_cold_start(
        "slow throttles",
        service,
        tasks,
        60_000.0,
        120,
        (0.98, 0.01),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_fast_endpoint_is_not_held_back_by_the_discovery_ramp() {
    // 5,000 short records answered in a millisecond, a quota far above what they need:
    // the ramp grows with the answers, so the work, not the ramp, sets the time.
    let service = Bedrockish::new(10_000_000_000, 1, 1e9);
    let start = tokio::time::Instant::now();
    let ran = drive(service.clone(), tasks(5000, 150, 250, 100), &[], &[]).await;
    let elapsed = start.elapsed();
    assert_every_record_ok(&ran, 5000);
    eprintln!(
        "fast endpoint: 5,000 records in {elapsed:?}, {:?}",
        service.seen()
    );
    assert!(elapsed <= Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(service.seen().throttles, 0);
}
