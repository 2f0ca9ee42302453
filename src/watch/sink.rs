//! Where events go as JSON Lines: the `--events` file (or stdout) and the run directory's
//! timeline. Each sink has its own pace for progress snapshots; every other event is written
//! as it happens. A sink that cannot be written to says so once and is dropped: watching a
//! run never stops it.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::events::{Body, Event};

/// How often a sink takes a progress snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Every so many seconds (`--events-every`).
    Every(f64),
    /// The timeline's: dense at the start, where short runs live, sparse over a night:
    /// every second for a minute, every 5 s until 10 minutes, then every 15 s (about 2,000
    /// lines for 8 hours).
    Timeline,
}

impl Pace {
    fn seconds(self, elapsed_s: f64) -> f64 {
        match self {
            Pace::Every(s) => s,
            Pace::Timeline if elapsed_s < 60.0 => 1.0,
            Pace::Timeline if elapsed_s < 600.0 => 5.0,
            Pace::Timeline => 15.0,
        }
    }
}

pub struct Sink {
    /// What the warning names when writing fails.
    name: String,
    out: Option<Box<dyn Write + Send>>,
    pace: Pace,
    last_progress_s: Option<f64>,
}

impl Sink {
    /// Appends to `path` (a resumed run's timeline goes on where it stopped).
    pub fn append(path: &Path, pace: Pace) -> std::io::Result<Sink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Sink::new(
            path,
            Box::new(std::io::BufWriter::new(file)),
            pace,
        ))
    }

    /// Truncates `path`: the `--events` file holds this invocation's events.
    pub fn create(path: &Path, pace: Pace) -> std::io::Result<Sink> {
        let file = std::fs::File::create(path)?;
        Ok(Sink::new(
            path,
            Box::new(std::io::BufWriter::new(file)),
            pace,
        ))
    }

    pub fn stdout(pace: Pace) -> Sink {
        Sink::new(Path::new("stdout"), Box::new(std::io::stdout()), pace)
    }

    fn new(name: &Path, out: Box<dyn Write + Send>, pace: Pace) -> Sink {
        Sink {
            name: name.display().to_string(),
            out: Some(out),
            pace,
            last_progress_s: None,
        }
    }

    /// Whether a progress snapshot is due at `elapsed_s`.
    pub fn wants_progress(&self, elapsed_s: f64) -> bool {
        self.out.is_some()
            && self
                .last_progress_s
                .is_none_or(|last| elapsed_s - last >= self.pace.seconds(elapsed_s) - 1e-3)
    }

    /// Writes one event and flushes it (events are at most a few a second), so a reader
    /// tailing the file sees each as it happens.
    pub fn write(&mut self, event: &Event) {
        let Some(out) = &mut self.out else { return };
        if matches!(event.body, Body::Progress(_)) {
            self.last_progress_s = Some(event.since_start_s);
        }
        let written = serde_json::to_vec(event)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push(b'\n');
                out.write_all(&line)?;
                out.flush()
            });
        if let Err(err) = written {
            eprintln!(
                "warning: cannot write events to {}: {err}; no more events go there, the run goes on",
                self.name
            );
            self.out = None;
        }
    }
}

/// Where `--events` writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    pub fn parse(value: &str) -> Target {
        match value {
            "-" => Target::Stdout,
            path => Target::File(PathBuf::from(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_is_dense_at_the_start_and_sparse_over_a_night() {
        assert_eq!(Pace::Timeline.seconds(10.0), 1.0);
        assert_eq!(Pace::Timeline.seconds(300.0), 5.0);
        assert_eq!(Pace::Timeline.seconds(8.0 * 3600.0), 15.0);
        assert_eq!(Pace::Every(2.5).seconds(8.0 * 3600.0), 2.5);
    }

    #[test]
    fn a_progress_snapshot_is_due_once_per_pace() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::create(&dir.path().join("e.jsonl"), Pace::Every(5.0)).unwrap();
        assert!(sink.wants_progress(0.0));
        let event = |elapsed_s| Event {
            schema_version: 1,
            run_id: "r".into(),
            ts: String::new(),
            since_start_s: elapsed_s,
            body: Body::Progress(Default::default()),
        };
        sink.write(&event(0.2));
        assert!(!sink.wants_progress(4.0));
        assert!(sink.wants_progress(5.2));
        drop(sink);
        let text = std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
