//! Several processes on one quota, none seeing the others (the shards of one job started
//! together on one account and region): each learns from its own throttles, yet together
//! they use the quota as one process would, with few throttles, and each gets a fair share.

use std::time::Duration;

use super::{Bedrockish, Pacer, Seen, lanes_pacing, start, tasks};

/// Runs `processes` pools over one quota from a cold start, each with its own records and
/// its own `pacer`; returns what the service saw in all and what each process was seen
/// doing at `at` seconds.
async fn drive_processes(
    service: Bedrockish,
    processes: u32,
    pacer: impl Fn() -> Pacer,
    at: u64,
) -> (Seen, Vec<Seen>) {
    let clients: Vec<Bedrockish> = (0..processes).map(|_| service.sharing()).collect();
    let mut pools = Vec::new();
    for client in &clients {
        let lanes = lanes_pacing(vec![client.clone()], &pacer);
        let (pool, mut outcome_rx) = start(lanes, 2048, tasks(1000, 220, 2000, 200));
        pools.push(pool);
        tokio::spawn(async move {
            while let Some(outcome) = outcome_rx.recv().await {
                assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(at)).await;
    let seen = (
        service.seen(),
        clients.iter().map(Bedrockish::own).collect(),
    );
    for pool in pools {
        pool.abort();
    }
    seen
}

/// Combined goodput, combined throttled share and each process's share of the tokens.
fn shares(all: &Seen, each: &[Seen], tpm: f64, secs: f64) -> (f64, f64, Vec<f64>) {
    let goodput = all.tokens / (tpm / 60.0 * secs + tpm);
    let throttled = all.throttles as f64 / all.requests.max(1) as f64;
    let shares = each.iter().map(|s| s.tokens / all.tokens).collect();
    (goodput, throttled, shares)
}

#[tokio::test(start_paused = true)]
async fn four_shards_started_together_share_one_quota() {
    // 120k TPM, nothing known of it. Each process needs a throttle of its own to learn its
    // share, so four take at least four: at most 1% of the requests are throttled when
    // throttles come back at once. When they take 50 ms, as over a real network, each
    // process also meets the empty bucket with what it sent in those 50 ms.
    for (delay, most_throttled) in [(0, 0.01), (50, 0.02)] {
        let mut service = Bedrockish::new(120_000, 300, 80.0);
        service.throttle_delay = Duration::from_millis(delay);
        let (all, each) =
            drive_processes(service, 4, || Pacer::new(None, None).shared_by(4), 90).await;
        let (goodput, throttled, shares) = shares(&all, &each, 120_000.0, 90.0);
        eprintln!(
            "four shards, throttles after {delay} ms: goodput {goodput:.3}, throttled \
             {throttled:.4}, shares {shares:.3?} {each:?}"
        );
        assert!(goodput >= 0.95, "goodput {goodput:.3}");
        assert!(throttled <= most_throttled, "throttled {throttled:.4}");
        for share in shares {
            assert!(share >= 0.2, "a share of {share:.3}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shards_given_the_accounts_tpm_start_from_their_share_of_it() {
    // `--tpm 120000` on each of four shards: the account's quota, not each one's.
    let run = |told: bool| {
        let service = Bedrockish::new(120_000, 300, 80.0);
        drive_processes(
            service,
            4,
            move || Pacer::new(Some(120_000), None).shared_by(if told { 4 } else { 1 }),
            90,
        )
    };
    let (all, each) = run(true).await;
    let (goodput, throttled, shares) = shares(&all, &each, 120_000.0, 90.0);
    eprintln!(
        "four shards, --tpm told: goodput {goodput:.3}, throttled {throttled:.4}, shares {shares:.3?}"
    );
    assert!(goodput >= 0.95, "goodput {goodput:.3}");
    assert!(throttled <= 0.01, "throttled {throttled:.4}");
    // Each one taking the whole quota for its own starts with four full buckets' worth.
    let (all, _) = run(false).await;
    let throttled = all.throttles as f64 / all.requests as f64;
    eprintln!("four shards, --tpm not shared: throttled {throttled:.4} {all:?}");
    assert!(throttled > 0.05, "throttled {throttled:.4}");
}
