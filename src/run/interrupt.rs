//! Ctrl-C during a run: the first stops taking records (calls in flight may finish within
//! the grace period, then state is saved); the second exits at once. Either way the run
//! directory stays resumable, because only checkpointed lines count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Starts listening for Ctrl-C; the receiver changes on the first one.
pub fn watch(stop: Arc<AtomicBool>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tx.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
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
