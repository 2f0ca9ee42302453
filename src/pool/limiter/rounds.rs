//! The limiter's rules replayed round by round in explicit time: slow start doubles until
//! the max, nothing grows unless the limit is reached, congestion cuts relative to what is
//! in flight, avoidance grows by one (cautiously near the last congestion), neutral errors
//! change nothing, the bounds hold, and the limit converges on a model of a token quota.

use std::time::Duration;

use tokio::time::Instant;

use super::aimd::{LimiterCore, Phase, Signal};

/// Runs `rounds` round trips of `rtt`, each filling every slot and ending them all with
/// `signal(limit)`.
fn run_rounds(
    core: &mut LimiterCore,
    now: &mut Instant,
    rounds: usize,
    rtt: Duration,
    signal: impl Fn(usize) -> Signal,
) -> Vec<usize> {
    let mut limits = Vec::new();
    for _ in 0..rounds {
        let mut started = 0;
        while core.try_start() {
            started += 1;
        }
        *now += rtt;
        let s = signal(started);
        for _ in 0..started {
            core.finish(s, rtt, *now);
        }
        limits.push(core.limit());
    }
    limits
}

#[test]
fn slow_start_doubles_each_round_until_the_max() {
    let mut now = Instant::now();
    let mut core = LimiterCore::new(4, 1, 300, now);
    let limits = run_rounds(&mut core, &mut now, 8, Duration::from_millis(500), |_| {
        Signal::Success
    });
    assert_eq!(&limits[..6], &[8, 16, 32, 64, 128, 256]);
    assert_eq!(limits[7], 300);
    assert_eq!(core.phase(), Phase::SlowStart);
    assert_eq!(core.report().peak, 300);
}

#[test]
fn does_not_grow_when_the_limit_is_not_reached() {
    let mut now = Instant::now();
    let mut core = LimiterCore::new(8, 1, 100, now);
    for _ in 0..20 {
        // Only two attempts at a time: the source is the bottleneck.
        assert!(core.try_start());
        assert!(core.try_start());
        now += Duration::from_millis(100);
        core.finish(Signal::Success, Duration::from_millis(100), now);
        core.finish(Signal::Success, Duration::from_millis(100), now);
    }
    assert_eq!(core.limit(), 8);
}

#[test]
fn congestion_cuts_relative_to_what_is_in_flight() {
    let mut now = Instant::now();
    let mut core = LimiterCore::new(100, 1, 1000, now);
    // Only 10 in flight when the throttle comes back.
    for _ in 0..10 {
        assert!(core.try_start());
    }
    now += Duration::from_millis(5);
    core.finish(Signal::Congestion, Duration::from_millis(5), now);
    assert_eq!(
        core.limit(),
        5,
        "slow start exits at half of what was in flight"
    );
    assert_eq!(core.phase(), Phase::Avoidance);
    // A second throttle from the same wave does not cut below what is in flight x 0.8.
    core.finish(Signal::Congestion, Duration::from_millis(5), now);
    assert_eq!(core.limit(), 5);
    assert_eq!(core.report().decreases, 1);
}

#[test]
fn avoidance_grows_by_one_a_round_then_cautiously_near_the_last_congestion() {
    let mut now = Instant::now();
    let mut core = LimiterCore::new(20, 1, 100, now);
    let rtt = Duration::from_millis(200);
    // Congestion with 20 in flight in slow start: 10.
    run_rounds(&mut core, &mut now, 1, rtt, |_| Signal::Congestion);
    assert_eq!(core.limit(), 10);
    // The round of the cut does not grow; then +1 a round up to 0.9 x 20 = 18.
    let limits = run_rounds(&mut core, &mut now, 9, rtt, |_| Signal::Success);
    assert_eq!(limits, vec![10, 11, 12, 13, 14, 15, 16, 17, 18]);
    // Then +1 every 8 rounds.
    let limits = run_rounds(&mut core, &mut now, 16, rtt, |_| Signal::Success);
    assert_eq!(limits[6], 18);
    assert_eq!(limits[7], 19);
    assert_eq!(limits[15], 20);
}

#[test]
fn neutral_errors_change_nothing_and_bounds_hold() {
    let mut now = Instant::now();
    let mut core = LimiterCore::new(4, 2, 6, now);
    run_rounds(&mut core, &mut now, 3, Duration::from_millis(50), |_| {
        Signal::Neutral
    });
    assert_eq!(core.limit(), 4);
    run_rounds(&mut core, &mut now, 5, Duration::from_millis(50), |_| {
        Signal::Success
    });
    assert_eq!(core.limit(), 6, "capped by the max");
    for _ in 0..10 {
        run_rounds(&mut core, &mut now, 1, Duration::from_millis(50), |_| {
            Signal::Congestion
        });
    }
    assert_eq!(core.limit(), 2, "floored by the min");
}

/// A model of Bedrock's token bucket: does the limiter use the quota without drowning?
#[test]
fn converges_on_a_token_quota() {
    // 1,000 tokens/s, 60,000 capacity; calls reserve 250 tokens, use 80, last 675 ms.
    let mut now = Instant::now();
    let mut core = LimiterCore::new(32, 1, 1024, now);
    let (rate, capacity, reserve, used) = (1000.0, 60_000.0, 250.0, 80.0);
    let rtt = Duration::from_millis(675);
    let tick = Duration::from_millis(5);
    let mut level = capacity;
    let mut calls: Vec<Instant> = Vec::new();
    let (mut ok, mut throttled, mut consumed) = (0u64, 0u64, 0.0);
    let end = now + Duration::from_secs(600);
    let measure_from = now + Duration::from_secs(120);
    let mut window_tokens = 0.0;
    while now < end {
        now += tick;
        level = (level + rate * tick.as_secs_f64()).min(capacity);
        // Calls ending now refund their unused reservation.
        let (done, running): (Vec<Instant>, Vec<Instant>) =
            calls.into_iter().partition(|t| *t <= now);
        calls = running;
        for _ in done {
            level = (level + reserve - used).min(capacity);
            consumed += used;
            if now >= measure_from {
                window_tokens += used;
            }
            ok += 1;
            core.finish(Signal::Success, rtt, now);
        }
        while core.try_start() {
            if level >= reserve {
                level -= reserve;
                calls.push(now + rtt);
            } else {
                throttled += 1;
                core.finish(Signal::Congestion, Duration::from_millis(1), now);
            }
        }
    }
    let window = (end - measure_from).as_secs_f64();
    let goodput = window_tokens / (rate * window);
    let throttle_share = throttled as f64 / (ok + throttled) as f64;
    eprintln!(
        "simulated: goodput {goodput:.3}, throttled {throttle_share:.4}, limit {}",
        core.limit()
    );
    assert!(
        goodput >= 0.95,
        "goodput {goodput:.3} (consumed {consumed})"
    );
    assert!(
        throttle_share <= 0.03,
        "throttled {throttle_share:.3} ({throttled} of {})",
        ok + throttled
    );
}
