"""Quota benchmark, from the cold start: how much of a tokens-per-minute quota each client
turns into admitted tokens, and how many of its requests are throttled, counting every
attempt from the moment the client starts. Runs bedrock-batch and the boto3 baseline side by
side, one after the other, each against a fresh server state (a full bucket), and reads the
server's own counters (/_local/stats).

    python bench/quota_bench.py --bin target/release/bedrock-batch [--scenarios A,B,D,E,R,T]

Scenarios (the server: local-server with the quota, latency and speed below):
  A  60k TPM, 300 ms to first token, 80 tokens/s, records ~1,100 characters, max tokens 200
  B  1.2M TPM, 1.5 s to first token, 80 tokens/s, records 1,500..2,500 characters
  D  120k TPM, dropping to 40k at 40 s and back to 120k at 80 s (POST /_local/quota)
  E  like A, with throttles answered after 50 ms, as over a real network
  R  regions: bedrock-batch alone over 1, 2 and 3 endpoints of 30k, 60k and 90k TPM
     (--endpoint-url repeated), 90 s each from the cold start
  T  tight: bedrock-batch alone, 300 records of ~200 characters (max tokens 100) run to the
     end against 15k TPM, 100 ms to first token, 400 tokens/s (tests/throttle.rs's server):
     throttled share and the tokens-per-minute rate summary.json says it learned

Goodput = tokens admitted in the window / (quota per second x window + one minute of quota),
since the bucket starts full. For D, each phase is measured from 20 s after its change
(goodput against that phase's quota, without the initial minute). Records failed from
throttling are counted from each client's own output.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
WORDS = (
    "the customer reports parcel arrived torn box cracked screen asks replacement refund within "
    "week order number delivery driver left door rain soaked manual missing charger cable warranty "
    "invoice billing address changed twice support agent promised callback never came"
).split()

SCENARIOS = {
    "A": dict(tpm=60_000, latency_ms=300, tokens_per_sec=80, chars=(220, 3000, 1100), max_tokens=200,
              window=120, records=2000),
    "B": dict(tpm=1_200_000, latency_ms=1500, tokens_per_sec=80, chars=(1500, 2500, None), max_tokens=200,
              window=90, records=8000),
    "D": dict(tpm=120_000, latency_ms=300, tokens_per_sec=80, chars=(220, 3000, 1100), max_tokens=200,
              window=140, records=4000, changes=[(40, 40_000), (80, 120_000)]),
    "E": dict(tpm=60_000, latency_ms=300, tokens_per_sec=80, chars=(220, 3000, 1100), max_tokens=200,
              window=120, records=2000, throttle_delay_ms=50),
}


def get(url, path):
    with urllib.request.urlopen(f"{url}{path}") as response:
        return json.load(response)


def post(url, path, body):
    request = urllib.request.Request(
        f"{url}{path}", method="POST", data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request).read()


def start_server(binary, s):
    args = ["--tpm", str(s["tpm"]), "--latency-ms", str(s["latency_ms"]),
            "--tokens-per-sec", str(s["tokens_per_sec"])]
    if s.get("throttle_delay_ms"):
        args += ["--throttle-delay-ms", str(s["throttle_delay_ms"])]
    process = subprocess.Popen(
        [binary, "local-server", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        sys.exit(f"the server did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].strip()


def sentence(rng):
    n = rng.randint(6, 16)
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_job(path, n, chars):
    low, high, mean = chars
    rng = random.Random(7)
    with open(path, "w") as f:
        for i in range(n):
            if mean:
                length = min(high, low + int(rng.expovariate(1.0 / (mean - low))))
            else:
                length = rng.randint(low, high)
            text = f"Ticket {i}:"
            while len(text) < length:
                text += " " + sentence(rng)
            f.write(json.dumps({"id": f"t{i}", "text": text[:length]}) + "\n")


def measure(name, command, url, s, env, work, graceful):
    post(url, "/_local/reset", {})
    readings = {}
    marks = sorted({0, s["window"]} | {at for at, _ in s.get("changes", [])}
                   | {at + 20 for at, _ in s.get("changes", [])})
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{name}.err"), "w"),
                               env=env)
    try:
        readings[0] = get(url, "/_local/stats")
        changes = dict(s.get("changes", []))
        for mark in marks[1:]:
            time.sleep(max(0.0, start + mark - time.monotonic()))
            readings[mark] = get(url, "/_local/stats")
            if mark in changes:
                post(url, "/_local/quota", {"tpm": changes[mark]})
    finally:
        # bedrock-batch stops on Ctrl-C and writes its summary; the baseline script would
        # wait for every queued future, so it is killed.
        process.send_signal(signal.SIGINT if graceful else signal.SIGKILL)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    final = get(url, "/_local/stats")
    return readings, final


def rates(readings, s):
    end = readings[s["window"]]
    start = readings[0]
    allowed = s["tpm"] / 60.0 * s["window"] + s["tpm"]
    row = {
        "goodput_pct": 100.0 * (end["admitted_tokens"] - start["admitted_tokens"]) / allowed,
        "requests": end["requests"] - start["requests"],
        "throttles": end["throttles"] - start["throttles"],
    }
    row["throttled_pct"] = 100.0 * row["throttles"] / max(1, row["requests"])
    phases = []
    quota = s["tpm"]
    changes = s.get("changes", [])
    bounds = [(0, None)] + changes
    for i, (at, new_quota) in enumerate(bounds):
        if new_quota:
            quota = new_quota
        if i == 0:
            continue
        begin = at + 20
        stop = changes[i][0] if i < len(changes) else s["window"]
        if stop <= begin:
            continue
        a, b = readings[begin], readings[stop]
        phases.append(100.0 * (b["admitted_tokens"] - a["admitted_tokens"]) / (quota / 60.0 * (stop - begin)))
    row["phases_pct"] = phases
    return row


def regions(binary, env):
    """Scenario R: goodput over 1, 2 and 3 endpoints (30k, 60k, 90k TPM), 90 s each."""
    quotas = [30_000, 60_000, 90_000]
    s = dict(SCENARIOS["A"], window=90, records=4000)
    rows = []
    for n in (1, 2, 3):
        servers = [start_server(binary, dict(s, tpm=q)) for q in quotas[:n]]
        try:
            with tempfile.TemporaryDirectory() as work:
                job = os.path.join(work, "job.jsonl")
                write_job(job, s["records"], s["chars"])
                command = [binary, "run", job, "--model", MODEL, "--out", os.path.join(work, "run"),
                           "--max-tokens", str(s["max_tokens"]), "--quiet"]
                for _, url in servers:
                    command += ["--endpoint-url", url]
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                time.sleep(s["window"])
                stats = [get(url, "/_local/stats") for _, url in servers]
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
                quota = sum(quotas[:n])
                allowed = quota / 60.0 * s["window"] + quota
                admitted = sum(x["admitted_tokens"] for x in stats)
                requests = sum(x["requests"] for x in stats)
                throttles = sum(x["throttles"] for x in stats)
                rows.append((n, quota, 100.0 * admitted / allowed, 100.0 * throttles / max(1, requests), requests))
        finally:
            for process, _ in servers:
                process.kill()
                process.wait()
    print(f"{'endpoints':>9} {'quota (TPM)':>12} {'goodput %':>9} {'throttled %':>11} {'requests':>9}")
    for n, quota, goodput, throttled, requests in rows:
        print(f"{n:9d} {quota:12d} {goodput:9.1f} {throttled:11.2f} {requests:9d}")


def tight(binary, env):
    """Scenario T: a job far above a tight quota, run to the end from the cold start."""
    s = dict(tpm=15_000, latency_ms=100, tokens_per_sec=400, max_tokens=100, records=300)
    server, url = start_server(binary, s)
    try:
        with tempfile.TemporaryDirectory() as work:
            job = os.path.join(work, "job.jsonl")
            with open(job, "w") as f:
                for i in range(s["records"]):
                    text = (f"Ticket {i}: the parcel arrived with a torn box and the screen of the tablet inside "
                            f"is cracked. The customer asks for a replacement. Order {100_000 + i}.")
                    f.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")
            run_dir = os.path.join(work, "run")
            started = time.monotonic()
            subprocess.run([binary, "run", job, "--model", MODEL, "--endpoint-url", url, "--out", run_dir,
                            "--max-tokens", str(s["max_tokens"]), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=600)
            elapsed = time.monotonic() - started
            stats = get(url, "/_local/stats")
            with open(os.path.join(run_dir, "summary.json")) as f:
                summary = json.load(f)
    finally:
        server.kill()
        server.wait()
    learned = summary.get("learned_quota", {}).get(MODEL, {}).get("tokens_per_minute")
    allowed = s["tpm"] / 60.0 * elapsed + s["tpm"]
    print(f"{'quota (TPM)':>11} {'records ok':>10} {'elapsed s':>9} {'goodput %':>9} {'throttled %':>11} "
          f"{'requests':>8} {'learned TPM':>11}")
    print(f"{s['tpm']:11d} {summary['records']['ok']:10d} {elapsed:9.1f} "
          f"{100.0 * stats['admitted_tokens'] / allowed:9.1f} "
          f"{100.0 * stats['throttles'] / max(1, stats['requests']):11.2f} {stats['requests']:8d} "
          f"{learned if learned is None else round(learned):>11}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/bedrock-batch")
    parser.add_argument("--scenarios", default="A,B,D,E,R,T")
    parser.add_argument("--workers", type=int, default=16, help="boto3 thread pool size")
    args = parser.parse_args()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
    table = []
    keys = args.scenarios.split(",")
    if "T" in keys:
        tight(args.bin, env)
        keys.remove("T")
    if "R" in keys:
        regions(args.bin, env)
        keys.remove("R")
    for key in keys:
        s = SCENARIOS[key]
        server, url = start_server(args.bin, s)
        try:
            with tempfile.TemporaryDirectory() as work:
                job = os.path.join(work, "job.jsonl")
                write_job(job, s["records"], s["chars"])
                run_dir = os.path.join(work, "run")
                ours = [args.bin, "run", job, "--model", MODEL, "--endpoint-url", url, "--out", run_dir,
                        "--max-tokens", str(s["max_tokens"]), "--quiet", "--grace", "30"]
                readings, final = measure("ours", ours, url, s, env, work, True)
                row = rates(readings, s)
                with open(os.path.join(run_dir, "summary.json")) as f:
                    summary = json.load(f)
                with open(os.path.join(run_dir, "results.jsonl")) as f:
                    failed = sum(1 for line in f if json.loads(line).get("error", {}).get("kind") == "throttling")
                row.update(client="bedrock-batch", failed_throttling=failed,
                           counted=f"{summary['attempts']}/{final['requests']} attempts, "
                                   f"{summary['throttles']}/{final['throttles']} throttles")
                table.append((key, row))
                baseline = [sys.executable, os.path.join(os.path.dirname(__file__), "boto3_threadpool.py"), job,
                            "--model", MODEL, "--endpoint-url", url, "--workers", str(args.workers),
                            "--max-tokens", str(s["max_tokens"])]
                readings, final = measure("boto3", baseline, url, s, env, work, False)
                row = rates(readings, s)
                with open(os.path.join(work, "boto3.err")) as f:
                    failed = sum(1 for line in f if line.startswith("failed:") and "Throttling" in line)
                row.update(client=f"boto3 ThreadPoolExecutor({args.workers}), adaptive", failed_throttling=failed,
                           counted="-")
                table.append((key, row))
        finally:
            server.kill()
            server.wait()
    print(f"{'':2} {'client':42} {'goodput %':>9} {'throttled %':>11} {'requests':>9} {'failed (throttling)':>19}  phases (goodput % of each phase's quota, from 20 s after the change)  summary/server")
    for key, r in table:
        phases = " / ".join(f"{p:.1f}" for p in r["phases_pct"]) or "-"
        print(f"{key:2} {r['client']:42} {r['goodput_pct']:9.1f} {r['throttled_pct']:11.2f} {r['requests']:9d} "
              f"{r['failed_throttling']:19d}  {phases:>20}  {r['counted']}")
    print(json.dumps([dict(r, scenario=k) for k, r in table]))


if __name__ == "__main__":
    main()
