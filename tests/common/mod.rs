//! Shared test plumbing: a real `aws-sdk-bedrockruntime` client pointed at a local server
//! (test credentials, SDK retries disabled), raw HTTP for the `/_local` routes, and tiny
//! image headers for vision requests.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use bedrock_batch::local_server::{LocalServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
pub const LLAMA: &str = "meta.llama3-1-8b-instruct-v1:0";
pub const TITAN_V2: &str = "amazon.titan-embed-text-v2:0";
pub const TITAN_V1: &str = "amazon.titan-embed-text-v1";
pub const COHERE: &str = "cohere.embed-english-v3";

pub async fn server(config: ServerConfig) -> LocalServer {
    LocalServer::start(config)
        .await
        .expect("local server starts")
}

pub fn client(url: &str) -> Client {
    client_with(url, None)
}

/// A client that also records the response headers of every call in `headers`.
pub fn client_with(url: &str, headers: Option<SeenHeaders>) -> Client {
    let mut config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(
            "AKIDLOCALTEST",
            "local-test-secret",
            None,
            None,
            "tests",
        ))
        .retry_config(RetryConfig::disabled());
    if let Some(headers) = headers {
        config = config.interceptor(headers);
    }
    Client::from_conf(config.build())
}

/// Records response headers, in call order.
#[derive(Debug, Clone, Default)]
pub struct SeenHeaders(pub Arc<Mutex<Vec<http::HeaderMap>>>);

impl SeenHeaders {
    pub fn last(&self, name: &str) -> Option<String> {
        let seen = self.0.lock().unwrap();
        seen.last()?
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

impl Intercept for SeenHeaders {
    fn name(&self) -> &'static str {
        "SeenHeaders"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut map = http::HeaderMap::new();
        for (name, value) in context.response().headers() {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes())?,
                http::HeaderValue::from_str(value)?,
            );
        }
        self.0.lock().unwrap().push(map);
        Ok(())
    }
}

/// A raw HTTP/1.1 request; returns (status, body).
pub async fn raw_http(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let answer = raw_http_declaring(url, method, path, body, None).await;
    (answer.status, answer.body)
}

/// A raw HTTP/1.1 answer: status, head (the status line and header lines) and body.
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// The value of header `name`, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A raw HTTP/1.1 request that declares `content_length` (the body's length when `None`),
/// read to the end.
pub async fn raw_http_declaring(
    url: &str,
    method: &str,
    path: &str,
    body: &[u8],
    content_length: Option<u64>,
) -> RawAnswer {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        content_length.unwrap_or(body.len() as u64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    RawAnswer {
        status,
        head,
        body: response[split + 4..].to_vec(),
    }
}

/// A PNG signature and IHDR chunk: enough for the server to read format and size.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(b"IHDR");
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

/// A JPEG header (SOI, JFIF, SOF0) of the given size.
pub fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    b.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    b.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&[
        0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9,
    ]);
    b
}

/// A GIF89a header with the given logical screen size.
pub fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = b"GIF89a".to_vec();
    bytes.extend_from_slice(&width.to_le_bytes());
    bytes.extend_from_slice(&height.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0x3B]);
    bytes
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bedrock-batch");

/// `bedrock-batch ARGS` in `work`, with test credentials (a client pointed at an endpoint
/// still signs its requests) and no instance-metadata lookups.
pub fn command(work: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .current_dir(work)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Signs a command's S3 requests with the key pair the local S3 endpoint checks
/// signatures with (uploads in `aws-chunked` encoding need it).
pub fn local_keys(command: &mut tokio::process::Command) {
    command
        .env(
            "AWS_ACCESS_KEY_ID",
            bedrock_batch::local_server::S3_ACCESS_KEY,
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            bedrock_batch::local_server::S3_SECRET_KEY,
        );
}

/// Every file under `dir`, at any depth (a local S3 directory's objects, say).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Copies directory `from` to `to`, at any depth (a run directory, to change the copy).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The `previous-*` directories `--fresh` moved earlier runs of `run_dir` to.
pub fn previous_runs(run_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("previous-"))
        })
        .collect()
}

/// `run JOB --model MODEL --out RUN_DIR --via batch` against a local server at `url` and
/// its S3 at `s3_url`, jobs under `s3` (`s3://BUCKET/PREFIX`), polling every 0.2 s. Run it
/// with [`local_keys`]: the local S3 checks signatures made with its own key pair.
pub fn batch_run_args(
    job: &str,
    model: &str,
    run_dir: &std::path::Path,
    url: &str,
    s3_url: &str,
    s3: &str,
) -> Vec<String> {
    [
        "run",
        job,
        "--model",
        model,
        "--out",
        &run_dir.display().to_string(),
        "--endpoint-url",
        url,
        "--s3-endpoint-url",
        s3_url,
        "--via",
        "batch",
        "--s3",
        s3,
        "--role-arn",
        "arn:aws:iam::123456789012:role/BedrockBatch",
        "--poll-secs",
        "0.2",
    ]
    .map(str::to_string)
    .to_vec()
}

/// Sends a signal (`INT`, `TERM`) with the `kill` command (no libc dependency in tests).
pub fn send_signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// How long a test waits for something it expects to see (a server counter, a file, a line
/// on stderr): far beyond any healthy wait, so only a broken run reaches it.
pub const WAIT_AT_MOST: std::time::Duration = std::time::Duration::from_secs(60);

/// How often a waiting test looks again.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Waits until `ready()` holds, looking every 20 ms for at most [`WAIT_AT_MOST`]; panics
/// naming `what` when it never does.
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < WAIT_AT_MOST,
            "waited {WAIT_AT_MOST:?} for {what}"
        );
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// A `bedrock-batch` process under test, its stderr collected as it is written, so a test
/// can wait for a line before it acts.
pub struct Running {
    child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts `command` (built by [`command`]: stdout and stderr piped).
    pub fn start(mut command: tokio::process::Command) -> Running {
        let mut child = command.spawn().unwrap();
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let collected = stderr.clone();
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                collected.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Running {
            child,
            stderr,
            reader,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("the run is still going") as i32
    }

    /// What the run has written to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string()
    }

    /// Waits until `ready(stderr so far)` holds, looking every 20 ms for at most
    /// [`WAIT_AT_MOST`]; panics naming `what` when it never does or the run ends first.
    pub async fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&str) -> bool) {
        let started = std::time::Instant::now();
        loop {
            let stderr = self.stderr();
            if ready(&stderr) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the run ended ({status}) before {what}; stderr:\n{stderr}");
            }
            assert!(
                started.elapsed() < WAIT_AT_MOST,
                "waited {WAIT_AT_MOST:?} for {what}; stderr so far:\n{stderr}"
            );
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Sends `signal` (`INT`, `TERM`, `KILL`).
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Waits for the run to end.
    pub async fn finish(self) -> std::process::Output {
        let Running {
            child,
            stderr,
            reader,
        } = self;
        let output = child.wait_with_output().await.unwrap();
        reader.await.unwrap();
        let stderr = std::mem::take(&mut *stderr.lock().unwrap());
        std::process::Output { stderr, ..output }
    }
}

/// Runs `bedrock-batch ARGS` in `work`, sends it `signal` once `ready(stderr so far)` holds
/// (see [`Running::wait_until`]), and waits for it to end.
pub async fn run_interrupted(
    work: &std::path::Path,
    args: &[&str],
    signal: &str,
    what: &str,
    ready: impl FnMut(&str) -> bool,
) -> std::process::Output {
    let mut running = Running::start(command(work, args));
    running.wait_until(what, ready).await;
    running.signal(signal);
    running.finish().await
}

/// Runs `bedrock-batch ARGS` in `work` to completion.
pub async fn bb(work: &std::path::Path, args: &[&str]) -> std::process::Output {
    command(work, args).output().await.unwrap()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The lines of RUN_DIR/results.jsonl, parsed.
pub fn read_lines(run_dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("results.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// RUN_DIR/summary.json, parsed.
pub fn read_summary(run_dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap()
}

/// Writes `records` as a JSONL job file `name` in `dir`; returns the name.
/// A job file of `n` support tickets of about 200 characters (ids `t0`, `t1`...), as the
/// quota and watching tests send them.
pub fn ticket_job(dir: &std::path::Path, n: usize) -> String {
    let records: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("t{i}"),
                "text": format!(
                    "Ticket {i}: the parcel arrived with a torn box and the screen of the tablet inside is cracked. The customer asks for a replacement. Order {}.",
                    100_000 + i
                ),
            })
        })
        .collect();
    write_jsonl(dir, "job.jsonl", &records)
}

pub fn write_jsonl(dir: &std::path::Path, name: &str, records: &[serde_json::Value]) -> String {
    let body: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(dir.join(name), body).unwrap();
    name.to_string()
}

/// A finished `bedrock-batch run` and its RUN_DIR.
pub struct Run {
    pub output: std::process::Output,
    pub dir: std::path::PathBuf,
    pub elapsed: std::time::Duration,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stderr(&self) -> String {
        stderr(&self.output)
    }

    pub fn lines(&self) -> Vec<serde_json::Value> {
        read_lines(&self.dir)
    }

    pub fn summary(&self) -> serde_json::Value {
        read_summary(&self.dir)
    }

    /// The lines by id, asserting each id appears once.
    pub fn by_id(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut map = std::collections::BTreeMap::new();
        for line in self.lines() {
            let id = match &line["id"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert!(
                map.insert(id.clone(), line).is_none(),
                "id {id} appears twice"
            );
        }
        map
    }
}

/// `bedrock-batch run ARGS --out work/run-N` with a fresh RUN_DIR; `adjust` may change the
/// command (its environment) before it starts.
pub async fn run_fresh_with(
    work: &std::path::Path,
    args: &[&str],
    adjust: impl FnOnce(&mut tokio::process::Command),
) -> Run {
    let dir = work.join(format!("run-{}", fastrand::u32(..)));
    let mut full = vec!["run"];
    full.extend_from_slice(args);
    let mut command = command(work, &full);
    command.arg("--out").arg(&dir);
    adjust(&mut command);
    let started = std::time::Instant::now();
    let output = command.output().await.unwrap();
    Run {
        output,
        dir,
        elapsed: started.elapsed(),
    }
}

pub async fn run_fresh(work: &std::path::Path, args: &[&str]) -> Run {
    run_fresh_with(work, args, |_| {}).await
}
