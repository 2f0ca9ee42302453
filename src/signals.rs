//! Ctrl-C and SIGTERM (what systemd, Kubernetes and AWS Batch send), caught from the moment
//! [`Signals::listen`] returns and queued until asked for: what a run and the local server
//! wait on to stop cleanly.

/// Waits for the next Ctrl-C or SIGTERM; `false` when signals cannot be watched.
pub async fn next_signal() -> bool {
    Signals::listen().next().await
}

/// Ctrl-C and SIGTERM, caught from the moment `listen` returns (not from a first poll), and
/// queued until `next` is asked: a signal that comes between two `next` calls is not lost.
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The next signal; `false` when none can be watched.
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
                match signal {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            }
            if self.interrupt.is_none() && self.terminate.is_none() {
                return false;
            }
            tokio::select! {
                interrupted = recv(&mut self.interrupt) => interrupted.is_some(),
                terminated = recv(&mut self.terminate) => terminated.is_some(),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}
