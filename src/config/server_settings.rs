//! The `local-server` flags -> the local server's [`ServerConfig`] (validated by the server
//! when it starts).

use std::time::Duration;

use crate::cli::LocalServerArgs;
use crate::local_server::{BatchFaults, FaultRates, ServerConfig};

/// The local server's configuration the `local-server` flags describe (validated by the
/// server on start).
pub fn server_config(args: &LocalServerArgs) -> ServerConfig {
    ServerConfig {
        port: args.port,
        tpm: args.tpm,
        rpm: args.rpm,
        burndown: args.burndown,
        latency: Duration::from_millis(args.latency_ms),
        tokens_per_sec: args.tokens_per_sec,
        timeout_delay: Duration::from_millis(args.timeout_delay_ms),
        throttle_delay: Duration::from_millis(args.throttle_delay_ms),
        faults: FaultRates {
            fail: args.fail_rate,
            timeout: args.timeout_rate,
            reset: args.reset_rate,
            garbage: args.garbage_rate,
            model_error: args.model_error_rate,
            stream_throttle: args.stream_throttle_rate,
            schema_violation: args.schema_violation_rate,
        },
        deny_models: args.deny_model.clone(),
        retry_after: args.retry_after_ms.map(Duration::from_millis),
        seed: args.seed,
        knowledge_bases: args.knowledge_base.clone(),
        s3_port: args.s3_port,
        s3_dir: args.s3_dir.clone(),
        s3_buckets: args.s3_bucket.clone(),
        batch_step: Duration::from_millis(args.batch_step_ms),
        batch_records_per_sec: args.batch_records_per_sec,
        batch_min_records: args.batch_min_records,
        batch_faults: BatchFaults {
            fail: args.batch_fail_rate,
            partial: args.batch_partial_rate,
            expire: args.batch_expire_rate,
            record_error: args.batch_record_error_rate,
            create_answer_delay: Duration::from_millis(args.batch_create_delay_ms),
            deny_stop: args.batch_deny_stop,
        },
        batch_max_jobs: args.batch_max_jobs,
    }
}
