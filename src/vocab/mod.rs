//! The vocabulary every stage shares and that uses nothing else of ours: the request a
//! record becomes, the answer and its usage, how a call or record ended, and what the
//! stages report, and the output schema a `--schema` run holds answers to. `job` produces requests, engines turn them into outcomes, `store` and
//! `report` consume outcomes; all of them speak these words.

mod answer;
mod outcome;
mod reports;
mod request;
pub mod schema;
mod settings;
pub mod template;
mod tier;

pub use answer::{Answer, Citation, Passage, Source, Usage};
pub use outcome::{CallError, CallOutcome, ErrorKind, InvalidRecord, RegionTries};
pub use reports::{
    BATCH_DIR, BatchJobReport, BatchReport, EVENTS_FILE, FilesRead, LearnedQuota, LimiterReport,
    MaxTokensAdvice, RESULTS_FILE, SCHEMA_FILE, SUMMARY_FILE, unix_now,
};
pub use request::{
    ConverseInput, DEFAULT_OUTPUT_RESERVE, DocumentInput, ImageInput, Mode, Payload, Prepared,
    Prompt, RecordMeta, Shard, ShardError, Task,
};
pub use settings::RequestSettings;
pub use tier::ServiceTier;
