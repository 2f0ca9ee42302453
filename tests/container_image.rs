//! The Dockerfile can only be built where a Docker engine runs (not on the CI machine), so
//! what can be checked without one is checked here: the build stage copies every file the
//! crate compiles in (each `include_str!`/`include_bytes!` path of `src/` lies under a
//! copied directory), the build uses the lock file, the runtime stage runs as a non-root
//! user, and the examples that run the image expect that user and a shell. The Kubernetes
//! example's run command parses as bedrock-batch's flags, and the pods serve metrics on the
//! port their scrape annotations and their `metrics` container port name.

use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    fs::read_to_string(repo().join("Dockerfile")).unwrap()
}

/// The sources of the build stage's COPY lines (not `--from=` copies).
fn copied(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().skip(1).collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every path the crate includes at compile time, relative to the repository.
fn included(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            included(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = &text[at + macro_name.len()..];
                    let literal = &rest[..rest.find('"').unwrap()];
                    let resolved = path.parent().unwrap().join(literal);
                    let resolved = resolved
                        .canonicalize()
                        .unwrap_or_else(|e| panic!("{}: {literal}: {e}", path.display()));
                    found.push(
                        resolved
                            .strip_prefix(repo().canonicalize().unwrap())
                            .unwrap()
                            .to_path_buf(),
                    );
                }
            }
        }
    }
}

#[test]
fn the_build_stage_copies_everything_the_crate_compiles_in() {
    let copied = copied(&dockerfile());
    for needed in ["Cargo.toml", "Cargo.lock", "src"] {
        assert!(
            copied.iter().any(|c| c == needed),
            "{needed} is not copied: {copied:?}"
        );
    }
    let mut found = Vec::new();
    included(&repo().join("src"), &mut found);
    assert!(!found.is_empty(), "the service models are compiled in");
    for path in found {
        let first = path
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        assert!(
            copied.contains(&first),
            "{} is compiled in but {first}/ is not copied into the build stage: {copied:?}",
            path.display()
        );
    }
}

#[test]
fn the_image_builds_from_the_lock_file_and_runs_as_a_user_the_examples_expect() {
    let dockerfile = dockerfile();
    assert!(
        dockerfile.contains("cargo build --release --locked"),
        "{dockerfile}"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the runtime stage names its user")
        .trim();
    assert!(!matches!(user, "root" | "0"), "runs as {user}");
    // AWS Batch replaces CMD only: an ENTRYPOINT would swallow the examples' `sh -c`.
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.trim().starts_with("ENTRYPOINT")),
        "{dockerfile}"
    );
    for example in ["kubernetes/indexed-job.yaml", "kubernetes/merge-job.yaml"] {
        let text = fs::read_to_string(repo().join("examples").join(example)).unwrap();
        assert!(text.contains(&format!("runAsUser: {user}")), "{example}");
        assert!(text.contains("command: [\"sh\", \"-c\"]"), "{example}");
    }
    let batch = fs::read_to_string(repo().join("examples/aws-batch/array-job.json")).unwrap();
    assert!(
        batch.contains(&format!("uid {user}")),
        "array-job.json names the image's user"
    );
}

/// The words of the `bedrock-batch run` command in an example's folded `args` (`- >`).
fn run_command(example: &str) -> Vec<String> {
    let text = fs::read_to_string(repo().join("examples").join(example)).unwrap();
    let start = text
        .find("bedrock-batch run")
        .expect("a bedrock-batch run command");
    let mut lines = text[start..].lines();
    let first = lines.next().unwrap_or_default();
    std::iter::once(first)
        .chain(lines.take_while(|l| l.trim_start().starts_with("--")))
        .flat_map(str::split_whitespace)
        .map(|w| w.replace("$(JOB_COMPLETION_INDEX)", "0"))
        .collect()
}

#[test]
fn the_kubernetes_pods_serve_metrics_on_the_port_their_annotations_name() {
    use clap::Parser as _;
    let example = "kubernetes/indexed-job.yaml";
    let words = run_command(example);
    let cli = bedrock_batch::cli::Cli::try_parse_from(&words)
        .unwrap_or_else(|e| panic!("{example}: `{}` does not parse: {e}", words.join(" ")));
    let bedrock_batch::cli::Command::Run(args) = cli.command else {
        panic!("{example} runs `bedrock-batch run`")
    };
    let addr = args.metrics_addr.expect("the pods serve metrics");
    assert!(
        addr.ip().is_unspecified(),
        "{addr}: scraped from outside the pod"
    );
    let port = addr.port();
    let text = fs::read_to_string(repo().join("examples").join(example)).unwrap();
    for line in [
        format!("prometheus.io/port: \"{port}\""),
        "prometheus.io/scrape: \"true\"".to_string(),
        "prometheus.io/path: /metrics".to_string(),
        format!("{{ name: metrics, containerPort: {port} }}"),
    ] {
        assert!(text.contains(&line), "{example} lacks `{line}`");
    }
    let monitor = fs::read_to_string(repo().join("examples/kubernetes/pod-monitor.yaml")).unwrap();
    assert!(
        monitor.contains("port: metrics"),
        "the PodMonitor scrapes the named port"
    );
    assert!(
        monitor.contains("app.kubernetes.io/name: bedrock-batch")
            && text.contains("app.kubernetes.io/name: bedrock-batch")
    );
}
