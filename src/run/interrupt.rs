//! Ctrl-C (or SIGTERM, as systemd and schedulers send) during a run: the first stops
//! taking records (calls in flight may finish within the grace period, then state is
//! saved); the second exits at once. Either way the run directory stays resumable, because
//! only checkpointed lines count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Waits for the next Ctrl-C or SIGTERM; `false` when signals cannot be watched.
pub async fn next_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.is_ok(),
            terminated = terminate.recv() => terminated.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// Starts listening; the receiver changes on the first signal.
pub fn watch(stop: Arc<AtomicBool>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if !next_signal().await {
            return;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tx.send(true);
        if next_signal().await {
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
