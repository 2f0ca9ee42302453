"""Quota benchmark: how much of a tokens-per-minute quota each client turns into answers,
and how many of its calls are throttled. Starts the local server with a TPM quota and
latency, runs each client against a fresh server state for a warm-up then a measured
window, and reads the server's own counters (/_local/stats) at both ends of the window.

    python bench/quota_bench.py --bin target/release/bedrock-batch [--warmup 60] [--window 120]

Goodput = tokens in delivered answers during the window / (quota per second x window).
Throttled = throttled calls / all calls reaching the server during the window.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def stats(url):
    with urllib.request.urlopen(f"{url}/_local/stats") as response:
        return json.load(response)


def reset(url):
    request = urllib.request.Request(f"{url}/_local/reset", method="POST", data=b"")
    urllib.request.urlopen(request).read()


def start_server(binary, args):
    process = subprocess.Popen(
        [binary, "local-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        sys.exit(f"the server did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].strip()


def write_job(path, records):
    with open(path, "w") as f:
        for i in range(records):
            text = (
                f"Ticket {i}: the customer reports that the parcel arrived with a torn box and a cracked screen. "
                f"They ask for a replacement or a refund within the week. The order number is {100000 + i}."
            )
            f.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")


def measure(name, command, url, tpm, warmup, window, env):
    reset(url)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(warmup)
        before = stats(url)
        time.sleep(window)
        after = stats(url)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    tokens = (after["input_tokens"] + after["output_tokens"]) - (before["input_tokens"] + before["output_tokens"])
    calls = after["requests"] - before["requests"]
    throttles = after["throttles"] - before["throttles"]
    answers = after["by_status"].get("200", 0) - before["by_status"].get("200", 0)
    return {
        "client": name,
        "goodput_pct": 100.0 * tokens / (tpm / 60.0 * window),
        "throttled_pct": 100.0 * throttles / calls if calls else 0.0,
        "calls": calls,
        "answers": answers,
        "throttles": throttles,
        "answers_per_s": answers / window,
        "max_in_flight": after["max_in_flight"],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/bedrock-batch")
    parser.add_argument("--tpm", type=int, default=60000)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--tokens-per-sec", type=int, default=80)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--window", type=float, default=120)
    parser.add_argument("--workers", type=int, default=32, help="boto3 thread pool size")
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()

    server, url = start_server(
        args.bin,
        ["--tpm", str(args.tpm), "--latency-ms", str(args.latency_ms), "--tokens-per-sec", str(args.tokens_per_sec)],
    )
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
    results = []
    with tempfile.TemporaryDirectory() as work:
        job = os.path.join(work, "job.jsonl")
        write_job(job, args.records)
        try:
            ours = [
                args.bin, "run", job, "--model", MODEL, "--endpoint-url", url,
                "--out", os.path.join(work, "run"), "--max-tokens", str(args.max_tokens), "--quiet",
            ]
            results.append(measure("bedrock-batch (adaptive, quota unknown)", ours, url, args.tpm, args.warmup, args.window, env))
            baseline = [
                sys.executable, os.path.join(os.path.dirname(__file__), "boto3_threadpool.py"), job,
                "--model", MODEL, "--endpoint-url", url, "--workers", str(args.workers),
                "--max-tokens", str(args.max_tokens),
            ]
            results.append(measure(f"boto3 ThreadPoolExecutor({args.workers}), adaptive retries", baseline, url, args.tpm, args.warmup, args.window, env))
        finally:
            server.kill()
            server.wait()

    print(
        f"quota {args.tpm} tokens/min, latency {args.latency_ms} ms, {args.tokens_per_sec} tokens/s, "
        f"maxTokens {args.max_tokens}; warm-up {args.warmup:.0f} s, measured {args.window:.0f} s"
    )
    print(f"{'client':48} {'goodput % of quota':>19} {'throttled % of calls':>21} {'answers/s':>10} {'calls':>7} {'max in flight':>14}")
    for r in results:
        print(
            f"{r['client']:48} {r['goodput_pct']:19.1f} {r['throttled_pct']:21.2f} "
            f"{r['answers_per_s']:10.2f} {r['calls']:7d} {r['max_in_flight']:14d}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
