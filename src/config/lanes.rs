//! Where a run's calls go and which part of the job it takes: the lanes (`--local`,
//! `--endpoint-url`, `--region`, one lane per region or endpoint) and the shard (`--shard`,
//! `--shards`, or the index a Kubernetes Indexed Job or an AWS Batch array job sets).

use super::ConfigError;
use crate::bedrock::Endpoint;
use crate::cli::RunArgs;
use crate::vocab::Shard;

/// The shard `--shard I/N`, `--shards N` (index from JOB_COMPLETION_INDEX or
/// AWS_BATCH_JOB_ARRAY_INDEX) or an AWS Batch array job's environment names; `env` reads
/// environment variables.
pub(super) fn shard(
    args: &RunArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, ConfigError> {
    const K8S: &str = "JOB_COMPLETION_INDEX";
    const BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
    const BATCH_SIZE: &str = "AWS_BATCH_JOB_ARRAY_SIZE";
    let number = |name: &str, value: String| {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{name} must be a whole number, got {value:?}"))
    };
    match (&args.shard, args.shards) {
        (Some(_), Some(_)) => Err("give --shard I/N or --shards N, not both".into()),
        (Some(spec), None) => Ok(Some(Shard::parse(spec)?)),
        (None, Some(count)) => {
            let index = match (env(K8S), env(BATCH_INDEX)) {
                (Some(index), _) => number(K8S, index)?,
                (None, Some(index)) => number(BATCH_INDEX, index)?,
                (None, None) => {
                    return Err(format!(
                        "--shards {count} needs the shard index from {K8S} (Kubernetes Indexed Job) or {BATCH_INDEX} (AWS Batch array job); neither is set. Use --shard I/{count} to give it yourself."
                    ).into());
                }
            };
            Ok(Some(Shard::new(index, count)?))
        }
        (None, None) => match (env(BATCH_INDEX), env(BATCH_SIZE)) {
            (Some(index), Some(size)) => Ok(Some(Shard::new(
                number(BATCH_INDEX, index)?,
                number(BATCH_SIZE, size)?,
            )?)),
            _ => Ok(None),
        },
    }
}

/// One region or endpoint a run sends calls to.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneSpec {
    pub endpoint: Endpoint,
    /// `None`: the standard chain's region.
    pub region: Option<String>,
}

/// The lanes `--local`, `--endpoint-url` (repeated) and `--region` (a list) describe.
pub(super) fn lanes(args: &RunArgs) -> Result<Vec<LaneSpec>, ConfigError> {
    let mut regions: Vec<String> = Vec::new();
    for region in &args.region {
        let region = region.trim();
        if region.is_empty() {
            return Err("--region has an empty entry (use --region us-east-1,us-west-2)".into());
        }
        if regions.iter().any(|r| r == region) {
            return Err(format!("--region names {region} twice").into());
        }
        regions.push(region.to_string());
    }
    let lane = |endpoint: Endpoint, region: Option<&String>| LaneSpec {
        endpoint,
        region: region.cloned(),
    };
    let urls = &args.endpoint_url;
    if args.local && !urls.is_empty() {
        return Err("give --local or --endpoint-url, not both".into());
    }
    Ok(if args.local {
        // One in-process server per region: several regions can be tried without AWS.
        match regions.len() {
            0 => vec![lane(Endpoint::Local, None)],
            _ => regions
                .iter()
                .map(|r| lane(Endpoint::Local, Some(r)))
                .collect(),
        }
    } else if !urls.is_empty() {
        match regions.len() {
            0 | 1 => urls
                .iter()
                .map(|url| lane(Endpoint::Url(url.clone()), regions.first()))
                .collect(),
            n if n == urls.len() => urls
                .iter()
                .zip(&regions)
                .map(|(url, r)| lane(Endpoint::Url(url.clone()), Some(r)))
                .collect(),
            n => {
                return Err(format!(
                    "{} --endpoint-url and {n} regions: give one region for all endpoints, or one per endpoint",
                    urls.len()
                ).into());
            }
        }
    } else if regions.is_empty() {
        vec![lane(Endpoint::Aws, None)]
    } else {
        regions
            .iter()
            .map(|r| lane(Endpoint::Aws, Some(r)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::tests::run_args;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_shard_comes_from_the_flag_or_the_scheduler() {
        let none = env(&[]);
        assert_eq!(shard(&run_args(&[]), &none).unwrap(), None);
        assert_eq!(
            shard(&run_args(&["--shard", "2/5"]), &none).unwrap(),
            Some(Shard { index: 2, count: 5 })
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            shard(&run_args(&["--shards", "4"]), &k8s).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        let batch = env(&[
            ("AWS_BATCH_JOB_ARRAY_INDEX", "1"),
            ("AWS_BATCH_JOB_ARRAY_SIZE", "8"),
        ]);
        assert_eq!(
            shard(&run_args(&[]), &batch).unwrap(),
            Some(Shard { index: 1, count: 8 })
        );
        let err = shard(&run_args(&["--shards", "4"]), &none).unwrap_err();
        assert!(err.to_string().contains("JOB_COMPLETION_INDEX"), "{err}");
        let err = shard(
            &run_args(&["--shards", "4"]),
            env(&[("JOB_COMPLETION_INDEX", "4")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(shard(&run_args(&["--shard", "1/2", "--shards", "2"]), &none).is_err());
    }

    #[test]
    fn regions_and_endpoints_become_lanes() {
        let lanes_of = |extra: &[&str]| lanes(&run_args(extra));
        assert_eq!(
            lanes_of(&["--region", "us-east-1,us-west-2"]).unwrap(),
            vec![
                LaneSpec {
                    endpoint: Endpoint::Aws,
                    region: Some("us-east-1".into())
                },
                LaneSpec {
                    endpoint: Endpoint::Aws,
                    region: Some("us-west-2".into())
                },
            ]
        );
        let urls = lanes_of(&["--endpoint-url", "http://a", "--endpoint-url", "http://b"]).unwrap();
        assert_eq!(urls.len(), 2);
        assert!(urls.iter().all(|l| l.region.is_none()));
        assert!(
            lanes_of(&[
                "--region",
                "a,b,c",
                "--endpoint-url",
                "http://a",
                "--endpoint-url",
                "http://b"
            ])
            .unwrap_err()
            .to_string()
            .contains("one region for all endpoints")
        );
        assert!(
            lanes_of(&["--region", "a,a"])
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(lanes_of(&["--local", "--endpoint-url", "http://a"]).is_err());
        assert_eq!(lanes_of(&["--local", "--region", "a,b"]).unwrap().len(), 2);
    }
}
