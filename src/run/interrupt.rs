//! Ctrl-C (or SIGTERM, as systemd and schedulers send) during a run: the first stops
//! taking records (calls in flight may finish within the grace period, then state is
//! saved); the second exits at once. Either way the run directory stays resumable, because
//! only checkpointed lines count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::signals::Signals;

/// Starts listening; the receiver changes on the first signal. Signals are caught from the
/// moment this returns, so a run calls it before it sends anything.
pub fn watch(stop: Arc<AtomicBool>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let mut signals = Signals::listen();
    tokio::spawn(async move {
        if !signals.next().await {
            // Nothing to watch: never interrupted. Dropping `tx` would read as a signal.
            std::future::pending::<()>().await;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tx.send(true);
        if signals.next().await {
            eprintln!(
                "interrupted again: quitting now. Resume with: {}",
                resume_command()
            );
            std::process::exit(i32::from(crate::exit::INTERRUPTED));
        }
    });
    rx
}

/// This process's command line, quoted for a POSIX shell: rerunning it resumes.
pub fn resume_command() -> String {
    std::env::args()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
            {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
