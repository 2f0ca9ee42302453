//! The seeded fates of batch jobs and records: a job may fail, stop halfway
//! (PartiallyCompleted) or expire with part of its output, and single records may get
//! service errors; a caller may be denied stopping jobs. Each draw hashes the seed, the job's name and (for records) the record
//! id, so the same seed gives the same faults to the same jobs and records.

use xxhash_rust::xxh3::Xxh3;

/// Shares (0..1) of jobs and records that meet each fault, and the create call's delay.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchFaults {
    /// Jobs that end Failed, with no output.
    pub fail: f64,
    /// Jobs that end PartiallyCompleted, half of their records answered.
    pub partial: f64,
    /// Jobs that end Expired, half of their records answered.
    pub expire: f64,
    /// Records answered with a service error (500 or 429) instead of the model's output.
    pub record_error: f64,
    /// How long CreateModelInvocationJob waits, after the job is made, before it answers:
    /// the window in which a caller that dies has a job it never heard of (its rerun must
    /// find the job by its request token, not create a second one).
    pub create_answer_delay: std::time::Duration,
    /// StopModelInvocationJob is refused with AccessDeniedException, as for a caller whose
    /// policy allows creating jobs but not stopping them.
    pub deny_stop: bool,
}

/// Why batch fault rates were refused; the message names the flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchFaultsError {
    #[error("{flag} must be between 0 and 1, got {rate}")]
    OutOfRange { flag: &'static str, rate: f64 },
    #[error(
        "--batch-fail-rate, --batch-partial-rate and --batch-expire-rate add up to {jobs}, more than 1"
    )]
    OverOne { jobs: f64 },
}

impl BatchFaults {
    /// Checks every rate is a share and the job fates add up to at most 1.
    pub fn validate(&self) -> Result<(), BatchFaultsError> {
        for (flag, rate) in [
            ("--batch-fail-rate", self.fail),
            ("--batch-partial-rate", self.partial),
            ("--batch-expire-rate", self.expire),
            ("--batch-record-error-rate", self.record_error),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(BatchFaultsError::OutOfRange { flag, rate });
            }
        }
        let jobs = self.fail + self.partial + self.expire;
        if jobs > 1.0 + 1e-9 {
            return Err(BatchFaultsError::OverOne { jobs });
        }
        Ok(())
    }
}

/// How a job ends, drawn when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Complete,
    Fail,
    Partial,
    Expire,
}

/// A uniform number in `[0, 1)` for this (seed, job, record, salt).
fn unit(seed: u64, job: &str, record: &str, salt: u8) -> f64 {
    let mut hasher = Xxh3::with_seed(seed);
    hasher.update(job.as_bytes());
    hasher.update(&[0, salt]);
    hasher.update(record.as_bytes());
    (hasher.digest() >> 11) as f64 / (1u64 << 53) as f64
}

pub fn fate(faults: &BatchFaults, seed: u64, job_name: &str) -> Fate {
    let u = unit(seed, job_name, "", 1);
    if u < faults.fail {
        Fate::Fail
    } else if u < faults.fail + faults.partial {
        Fate::Partial
    } else if u < faults.fail + faults.partial + faults.expire {
        Fate::Expire
    } else {
        Fate::Complete
    }
}

/// The service error a record gets instead of its answer, if any: `(errorCode, message)`.
pub fn record_error(
    faults: &BatchFaults,
    seed: u64,
    job_name: &str,
    record_id: &str,
) -> Option<(u16, &'static str)> {
    let u = unit(seed, job_name, record_id, 2);
    if u >= faults.record_error {
        return None;
    }
    Some(if u < faults.record_error / 2.0 {
        (
            500,
            "The system encountered an unexpected error during processing. Try your request again.",
        )
    } else {
        (429, "Too many requests, please wait before trying again.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_follow_the_rates() {
        let none = BatchFaults::default();
        assert_eq!(fate(&none, 7, "job"), Fate::Complete);
        let all_fail = BatchFaults {
            fail: 1.0,
            ..BatchFaults::default()
        };
        assert_eq!(fate(&all_fail, 7, "job"), Fate::Fail);
        let half = BatchFaults {
            partial: 0.5,
            ..BatchFaults::default()
        };
        let partial = (0..1000)
            .filter(|i| fate(&half, 3, &format!("job{i}")) == Fate::Partial)
            .count();
        assert!((400..600).contains(&partial), "{partial}");
        assert_eq!(fate(&half, 3, "a"), fate(&half, 3, "a"));
    }

    #[test]
    fn record_errors_are_seeded_and_of_both_kinds() {
        let faults = BatchFaults {
            record_error: 0.2,
            ..BatchFaults::default()
        };
        let codes: Vec<u16> = (0..2000)
            .filter_map(|i| record_error(&faults, 1, "job", &format!("r{i}")))
            .map(|(code, _)| code)
            .collect();
        assert!((300..500).contains(&codes.len()), "{}", codes.len());
        assert!(codes.contains(&500) && codes.contains(&429));
        assert_eq!(
            record_error(&faults, 1, "job", "r1"),
            record_error(&faults, 1, "job", "r1")
        );
    }

    #[test]
    fn rates_are_checked() {
        let bad = BatchFaults {
            fail: 0.6,
            expire: 0.6,
            ..BatchFaults::default()
        };
        assert!(bad.validate().is_err());
        assert!(BatchFaults::default().validate().is_ok());
    }
}
