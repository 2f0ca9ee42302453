"""Quota benchmark, from the cold start: how much of a tokens-per-minute quota each client
turns into admitted tokens, and how many of its requests are throttled, counting every
attempt from the moment the client starts. Runs bedrock-batch and the boto3 baseline side by
side, one after the other, each against a fresh server state (a full bucket), and reads the
server's own counters (/_local/stats).

    python bench/quota_bench.py --bin target/release/bedrock-batch [--scenarios A,B,D,E,R,S,F,T]

Scenarios (the server: local-server with the quota, latency and speed below):
  A  60k TPM, 300 ms to first token, 80 tokens/s, records ~1,100 characters, max tokens 200
  B  1.2M TPM, 1.5 s to first token, 80 tokens/s, records 1,500..2,500 characters
  D  120k TPM, dropping to 40k at 40 s and back to 120k at 80 s (POST /_local/quota; the
     bucket keeps its level at a change); window 140 s
  E  like A, with throttles answered after 50 ms, as over a real network
  R  regions: bedrock-batch alone over 1, 2 and 3 endpoints of 30k, 60k and 90k TPM
     (--endpoint-url repeated), 90 s each from the cold start; each lane of the 3-endpoint
     run from its own server's counters
  S  shards: four `run --shard I/4` processes started together on one 120k TPM quota (records
     as in A), 90 s; then four boto3 processes, each on a quarter of the records
  F  fast: 5,000 records of ~200 characters (max tokens 100) run to the end on a server with
     no quota, no latency and instant generation: wall and CPU seconds of bedrock-batch, of
     bedrock-batch given --rpm 100000 (no discovery ramp), and of the boto3 baseline
  T  tight: bedrock-batch alone, 300 records of ~200 characters (max tokens 100) run to the
     end against 15k TPM, 100 ms to first token, 400 tokens/s (tests/throttle.rs's server):
     throttled share and the tokens-per-minute rate summary.json says it learned

Goodput = tokens admitted in the window / (quota per second x window + one minute of quota),
since the bucket starts full. For D, each phase after a change is measured against that
phase's quota per second x the stretch, without the extra minute (the bucket keeps its level
at a change, and a client that used the quota left it near empty): from the change itself,
from 10 s after it and from 20 s after it, with the phase's own throttled share. Records
failed from throttling are counted from each client's own output. CPU seconds are the user +
system time of the client process (getrusage of the children, taken around it).

After the detailed tables and their JSON, a compact table (markdown) gives the measures the
quota targets name, both clients side by side.
"""

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boto3_threadpool.py")
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
# The marks after each change of D at which the phase is measured again.
PHASE_OFFSETS = (0, 10, 20)


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
    args = ["--latency-ms", str(s["latency_ms"]), "--tokens-per-sec", str(s["tokens_per_sec"])]
    if s.get("tpm"):
        args += ["--tpm", str(s["tpm"])]
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


def stop_server(server):
    server.kill()
    server.wait()


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


def write_quarters(job, work, n):
    """The job's records split as `--shard I/n` splits them (record number - 1 modulo n)."""
    with open(job) as f:
        lines = f.readlines()
    paths = []
    for i in range(n):
        path = os.path.join(work, f"job-{i}-of-{n}.jsonl")
        with open(path, "w") as f:
            f.writelines(lines[i::n])
        paths.append(path)
    return paths


def ours_command(binary, job, url, run_dir, max_tokens, *extra):
    command = [binary, "run", job, "--model", MODEL, "--out", run_dir, "--max-tokens", str(max_tokens),
               "--quiet", *extra]
    for u in [url] if isinstance(url, str) else url:
        command += ["--endpoint-url", u]
    return command


def baseline_command(job, url, workers, max_tokens, *extra):
    return [sys.executable, BASELINE, job, "--model", MODEL, "--endpoint-url", url, "--workers", str(workers),
            "--max-tokens", str(max_tokens), *extra]


def read_summary(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def throttling_failures(run_dir):
    """Records bedrock-batch gave up on because of throttling, from its results.jsonl."""
    with open(os.path.join(run_dir, "results.jsonl")) as f:
        return sum(1 for line in f if json.loads(line).get("error", {}).get("kind") == "throttling")


def baseline_throttling_failures(err_path):
    """Records the baseline gave up on because of throttling, from its stderr."""
    with open(err_path) as f:
        return sum(1 for line in f if line.startswith("failed:") and "Throttling" in line)


def stop(processes, graceful):
    # bedrock-batch stops on Ctrl-C and writes its summary; the baseline script would
    # wait for every queued future, so it is killed. All are signalled before any is waited
    # for, so that processes run together also stop together.
    for process in processes:
        process.send_signal(signal.SIGINT if graceful else signal.SIGKILL)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(name, commands, url, s, env, work, graceful):
    """Starts the commands together against a reset server, reads its counters at the marks
    (0, the window's end, each change and PHASE_OFFSETS after it), changes the quota where D
    says, then stops them. Each command's stderr goes to WORK/NAME-I.err."""
    post(url, "/_local/reset", {})
    readings = {}
    changes = dict(s.get("changes", []))
    marks = sorted({0, s["window"]} | {at + offset for at in changes for offset in PHASE_OFFSETS})
    errs = [open(os.path.join(work, f"{name}-{i}.err"), "w") for i in range(len(commands))]
    start = time.monotonic()
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
                 for command, err in zip(commands, errs)]
    try:
        readings[0] = get(url, "/_local/stats")
        for mark in marks[1:]:
            time.sleep(max(0.0, start + mark - time.monotonic()))
            readings[mark] = get(url, "/_local/stats")
            if mark in changes:
                post(url, "/_local/quota", {"tpm": changes[mark]})
    finally:
        stop(processes, graceful)
        for err in errs:
            err.close()
    final = get(url, "/_local/stats")
    return readings, final


def share(part, whole):
    return 100.0 * part / whole if whole else 0.0


def rates(readings, s):
    end = readings[s["window"]]
    start = readings[0]
    allowed = s["tpm"] / 60.0 * s["window"] + s["tpm"]
    row = {
        "goodput_pct": share(end["admitted_tokens"] - start["admitted_tokens"], allowed),
        "requests": end["requests"] - start["requests"],
        "throttles": end["throttles"] - start["throttles"],
    }
    row["throttled_pct"] = share(row["throttles"], max(1, row["requests"]))
    changes = s.get("changes", [])
    phases = []
    detail = []
    for i, (at, quota) in enumerate(changes):
        stop_at = changes[i + 1][0] if i + 1 < len(changes) else s["window"]
        b = readings[stop_at]

        def goodput(begin):
            a = readings[begin]
            return share(b["admitted_tokens"] - a["admitted_tokens"], quota / 60.0 * (stop_at - begin))

        a = readings[at]
        requests, throttles = b["requests"] - a["requests"], b["throttles"] - a["throttles"]
        detail.append({
            "from_s": at, "to_s": stop_at, "quota": quota,
            "goodput_from_change_pct": goodput(at),
            "goodput_from_10s_pct": goodput(at + 10),
            "goodput_from_20s_pct": goodput(at + 20),
            "requests": requests, "throttles": throttles,
            "throttled_pct": share(throttles, max(1, requests)),
        })
        phases.append(goodput(at + 20))
    row["phases_pct"] = phases
    row["phase_detail"] = detail
    return row


def side_by_side(s, binary, env, workers):
    """A, B, D or E: bedrock-batch, then the boto3 baseline, on one server reset in between."""
    rows = []
    server, url = start_server(binary, s)
    try:
        with tempfile.TemporaryDirectory() as work:
            job = os.path.join(work, "job.jsonl")
            write_job(job, s["records"], s["chars"])
            run_dir = os.path.join(work, "run")
            ours = ours_command(binary, job, url, run_dir, s["max_tokens"], "--grace", "30")
            readings, final = measure("ours", [ours], url, s, env, work, True)
            row = rates(readings, s)
            summary = read_summary(run_dir)
            row.update(client="bedrock-batch", failed_throttling=throttling_failures(run_dir),
                       counted=f"{summary['attempts']}/{final['requests']} attempts, "
                               f"{summary['throttles']}/{final['throttles']} throttles")
            rows.append(row)
            baseline = baseline_command(job, url, workers, s["max_tokens"])
            readings, final = measure("boto3", [baseline], url, s, env, work, False)
            row = rates(readings, s)
            row.update(client=f"boto3 ThreadPoolExecutor({workers}), adaptive",
                       failed_throttling=baseline_throttling_failures(os.path.join(work, "boto3-0.err")),
                       counted="-")
            rows.append(row)
    finally:
        stop_server(server)
    return rows


def regions(binary, env):
    """Scenario R: goodput over 1, 2 and 3 endpoints (30k, 60k, 90k TPM), 90 s each; each lane
    of the 3-endpoint run from its own server's counters."""
    quotas = [30_000, 60_000, 90_000]
    s = dict(SCENARIOS["A"], window=90, records=4000)
    rows = []
    lanes = []
    for n in (1, 2, 3):
        servers = [start_server(binary, dict(s, tpm=q)) for q in quotas[:n]]
        try:
            with tempfile.TemporaryDirectory() as work:
                job = os.path.join(work, "job.jsonl")
                write_job(job, s["records"], s["chars"])
                run_dir = os.path.join(work, "run")
                command = ours_command(binary, job, [url for _, url in servers], run_dir, s["max_tokens"])
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                time.sleep(s["window"])
                stats = [get(url, "/_local/stats") for _, url in servers]
                stop([process], True)
                final = [get(url, "/_local/stats") for _, url in servers]
                summary = read_summary(run_dir)
                quota = sum(quotas[:n])
                admitted = sum(x["admitted_tokens"] for x in stats)
                requests = sum(x["requests"] for x in stats)
                throttles = sum(x["throttles"] for x in stats)
                rows.append({
                    "endpoints": n, "quota": quota,
                    "goodput_pct": share(admitted, quota / 60.0 * s["window"] + quota),
                    "throttled_pct": share(throttles, max(1, requests)), "requests": requests,
                    "failed_throttling": throttling_failures(run_dir),
                    "counted": f"{summary['attempts']}/{sum(x['requests'] for x in final)} attempts, "
                               f"{summary['throttles']}/{sum(x['throttles'] for x in final)} throttles",
                })
                if n == len(quotas):
                    lanes = [{
                        "quota": q,
                        "goodput_pct": share(x["admitted_tokens"], q / 60.0 * s["window"] + q),
                        "throttled_pct": share(x["throttles"], max(1, x["requests"])),
                        "requests": x["requests"], "throttles": x["throttles"],
                    } for q, x in zip(quotas, stats)]
        finally:
            for server, _ in servers:
                stop_server(server)
    print("R: bedrock-batch over 1, 2 and 3 endpoints, 90 s from the cold start")
    print(f"{'endpoints':>9} {'quota (TPM)':>12} {'goodput %':>9} {'throttled %':>11} {'requests':>9} "
          f"{'failed (throttling)':>19}  summary/servers")
    for r in rows:
        print(f"{r['endpoints']:9d} {r['quota']:12d} {r['goodput_pct']:9.1f} {r['throttled_pct']:11.2f} "
              f"{r['requests']:9d} {r['failed_throttling']:19d}  {r['counted']}")
    print("R, the 3-endpoint run lane by lane (each server's own counters at 90 s)")
    print(f"{'lane':>4} {'quota (TPM)':>12} {'goodput %':>9} {'throttled %':>11} {'requests':>9} {'throttles':>9}")
    for i, lane in enumerate(lanes):
        print(f"{i + 1:4d} {lane['quota']:12d} {lane['goodput_pct']:9.1f} {lane['throttled_pct']:11.2f} "
              f"{lane['requests']:9d} {lane['throttles']:9d}")
    print()
    return {"rows": rows, "lanes": lanes}


def shards(binary, env, workers):
    """Scenario S: four `--shard I/4` processes at once on one 120k TPM quota, 90 s from the
    cold start; then four boto3 processes, each on a quarter of the records."""
    n = 4
    s = dict(SCENARIOS["A"], tpm=120_000, window=90, records=4000)
    allowed = s["tpm"] / 60.0 * s["window"] + s["tpm"]
    result = {}
    server, url = start_server(binary, s)
    try:
        with tempfile.TemporaryDirectory() as work:
            job = os.path.join(work, "job.jsonl")
            write_job(job, s["records"], s["chars"])
            run_dirs = [os.path.join(work, f"run-{i}") for i in range(n)]
            commands = [ours_command(binary, job, url, run_dirs[i], s["max_tokens"], "--shard", f"{i}/{n}",
                                     "--grace", "30") for i in range(n)]
            readings, final = measure("ours", commands, url, s, env, work, True)
            summaries = [read_summary(d) for d in run_dirs]
            tokens = [x["usage"]["input_tokens"] + x["usage"]["output_tokens"] for x in summaries]
            result["bedrock-batch"] = {
                **window_totals(readings, s, allowed),
                "processes": [{
                    "tokens_share_pct": share(t, sum(tokens)),
                    "attempts": x["attempts"], "throttles": x["throttles"],
                    "throttled_pct": share(x["throttles"], max(1, x["attempts"])),
                } for t, x in zip(tokens, summaries)],
                "failed_throttling": sum(throttling_failures(d) for d in run_dirs),
                "counted": f"{sum(x['attempts'] for x in summaries)}/{final['requests']} attempts, "
                           f"{sum(x['throttles'] for x in summaries)}/{final['throttles']} throttles",
            }
            quarters = write_quarters(job, work, n)
            logs = [os.path.join(work, f"boto3-{i}.usage") for i in range(n)]
            commands = [baseline_command(quarters[i], url, workers, s["max_tokens"], "--usage-log", logs[i])
                        for i in range(n)]
            readings, final = measure("boto3", commands, url, s, env, work, False)
            done = []
            for log in logs:
                with open(log) as f:
                    done.append([json.loads(line) for line in f if line.strip()])
            tokens = [sum(d["input_tokens"] + d["output_tokens"] for d in records) for records in done]
            retries = [sum(d["retries"] for d in records) for records in done]
            result[f"boto3({workers}) x {n}"] = {
                **window_totals(readings, s, allowed),
                "processes": [{
                    "tokens_share_pct": share(t, sum(tokens)),
                    "attempts": len(records) + r, "throttles": r,
                    "throttled_pct": share(r, max(1, len(records) + r)),
                } for t, r, records in zip(tokens, retries, done)],
                "failed_throttling": sum(baseline_throttling_failures(os.path.join(work, f"boto3-{i}.err"))
                                         for i in range(n)),
                "counted": "-",
            }
    finally:
        stop_server(server)
    print(f"S: {n} processes at once on one {s['tpm']} TPM quota, {s['window']} s from the cold start")
    print(f"{'client':26} {'goodput %':>9} {'throttled %':>11} {'requests':>9} {'failed (throttling)':>19}  "
          f"each process: share of tokens % (throttled %)  summary/server")
    for client, r in result.items():
        each = " ".join(f"{p['tokens_share_pct']:.1f} ({p['throttled_pct']:.2f})" for p in r["processes"])
        print(f"{client:26} {r['goodput_pct']:9.1f} {r['throttled_pct']:11.2f} {r['requests']:9d} "
              f"{r['failed_throttling']:19d}  {each}  {r['counted']}")
    print("  bedrock-batch's shares are of the tokens in the four summary.json files (calls finished in the\n"
          "  grace after the window included); boto3's of its usage logs, and its per-process throttled %\n"
          "  counts the retries of its completed calls only (botocore's RetryAttempts).")
    print()
    return result


def window_totals(readings, s, allowed):
    start, end = readings[0], readings[s["window"]]
    requests = end["requests"] - start["requests"]
    throttles = end["throttles"] - start["throttles"]
    return {"goodput_pct": share(end["admitted_tokens"] - start["admitted_tokens"], allowed),
            "requests": requests, "throttles": throttles, "throttled_pct": share(throttles, max(1, requests))}


def run_to_end(command, env, stdout=subprocess.DEVNULL):
    """Wall and CPU seconds (user + system) of one child run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=600, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return process, wall, cpu


def fast(binary, env, workers):
    """Scenario F: 5,000 short records to the end on a server with no quota and no latency."""
    s = dict(tpm=None, latency_ms=0, tokens_per_sec=0, max_tokens=100, records=5000, chars=(190, 210, None))
    rows = []
    server, url = start_server(binary, s)
    try:
        with tempfile.TemporaryDirectory() as work:
            job = os.path.join(work, "job.jsonl")
            write_job(job, s["records"], s["chars"])
            for label, extra in (("bedrock-batch", ()), ("bedrock-batch --rpm 100000", ("--rpm", "100000"))):
                post(url, "/_local/reset", {})
                run_dir = os.path.join(work, f"run-{len(rows)}")
                process, wall, cpu = run_to_end(ours_command(binary, job, url, run_dir, s["max_tokens"], *extra), env)
                summary = read_summary(run_dir)
                rows.append({"client": label, "exit": process.returncode, "wall_s": wall, "cpu_s": cpu,
                             "ok": summary["records"]["ok"], "failed_throttling": throttling_failures(run_dir),
                             "requests": get(url, "/_local/stats")["requests"]})
            post(url, "/_local/reset", {})
            process, wall, cpu = run_to_end(baseline_command(job, url, workers, s["max_tokens"]), env,
                                            stdout=subprocess.PIPE)
            lines = process.stdout.strip().splitlines()
            counts = json.loads(lines[-1]) if lines else {"ok": 0}
            rows.append({"client": f"boto3 ThreadPoolExecutor({workers}), adaptive", "exit": process.returncode,
                         "wall_s": wall, "cpu_s": cpu, "ok": counts["ok"],
                         "failed_throttling": sum(1 for line in process.stderr.splitlines()
                                                  if line.startswith("failed:") and "Throttling" in line),
                         "requests": get(url, "/_local/stats")["requests"]})
    finally:
        stop_server(server)
    print(f"F: {s['records']} records of ~200 characters to the end, no quota, no latency, from the cold start")
    print(f"{'client':42} {'wall s':>7} {'CPU s':>7} {'records ok':>10} {'requests':>9} {'failed (throttling)':>19} "
          f"{'exit':>4}")
    for r in rows:
        print(f"{r['client']:42} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {r['ok']:10d} {r['requests']:9d} "
              f"{r['failed_throttling']:19d} {r['exit']:4d}")
    if any(r["ok"] != s["records"] for r in rows):
        print(f"  NOT every run did all {s['records']} records: the times above are not comparable")
    print()
    return rows


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
            _, elapsed, _ = run_to_end(ours_command(binary, job, url, run_dir, s["max_tokens"]), env)
            stats = get(url, "/_local/stats")
            summary = read_summary(run_dir)
            failed = throttling_failures(run_dir)
    finally:
        stop_server(server)
    learned = summary.get("learned_quota", {}).get(MODEL, {}).get("tokens_per_minute")
    allowed = s["tpm"] / 60.0 * elapsed + s["tpm"]
    row = {"quota": s["tpm"], "ok": summary["records"]["ok"], "elapsed_s": elapsed,
           "goodput_pct": share(stats["admitted_tokens"], allowed),
           "throttled_pct": share(stats["throttles"], max(1, stats["requests"])),
           "requests": stats["requests"], "learned_tpm": learned, "failed_throttling": failed}
    print("T: 300 records to the end against 15k TPM")
    print(f"{'quota (TPM)':>11} {'records ok':>10} {'elapsed s':>9} {'goodput %':>9} {'throttled %':>11} "
          f"{'requests':>8} {'learned TPM':>11} {'failed (throttling)':>19}")
    print(f"{row['quota']:11d} {row['ok']:10d} {elapsed:9.1f} {row['goodput_pct']:9.1f} {row['throttled_pct']:11.2f} "
          f"{row['requests']:8d} {learned if learned is None else round(learned):>11} {failed:19d}")
    print()
    return row


def print_side_by_side(table):
    print(f"{'':2} {'client':42} {'goodput %':>9} {'throttled %':>11} {'requests':>9} {'failed (throttling)':>19}  "
          f"phases (goodput % of each phase's quota, from 20 s after the change)  summary/server")
    for key, r in table:
        phases = " / ".join(f"{p:.1f}" for p in r["phases_pct"]) or "-"
        print(f"{key:2} {r['client']:42} {r['goodput_pct']:9.1f} {r['throttled_pct']:11.2f} {r['requests']:9d} "
              f"{r['failed_throttling']:19d}  {phases:>20}  {r['counted']}")
    details = [(key, r) for key, r in table if r["phase_detail"]]
    if details:
        print()
        print("D phase by phase: goodput % of the phase's quota x seconds (no extra minute), from the change, "
              "10 s and 20 s after it; the phase's own throttled share")
        print(f"{'client':42} {'phase':>9} {'quota':>7} {'from change':>11} {'from +10 s':>10} {'from +20 s':>10} "
              f"{'throttled %':>11} {'requests':>8}")
        for _, r in details:
            for p in r["phase_detail"]:
                stretch = f"{p['from_s']}..{p['to_s']} s"
                print(f"{r['client']:42} {stretch:>9} {p['quota']:7d} {p['goodput_from_change_pct']:11.1f} "
                      f"{p['goodput_from_10s_pct']:10.1f} {p['goodput_from_20s_pct']:10.1f} "
                      f"{p['throttled_pct']:11.2f} {p['requests']:8d}")
    print()


def compact(table, results, workers):
    """The measures the quota targets name, as one markdown table, both clients side by side."""
    lines = []
    d = [r for key, r in table if key == "D"]
    if d:
        def rise(r):
            p = r["phase_detail"][-1]
            return (f"from the change {p['goodput_from_change_pct']:.1f}%, from +10 s {p['goodput_from_10s_pct']:.1f}%"
                    f" of its ceiling; {p['throttled_pct']:.2f}% throttled in the phase; "
                    f"{r['failed_throttling']} failed (throttling)")
        last = d[0]["phase_detail"][-1]
        lines.append((f"D: 120k TPM, 40k after 40 s, 120k again after 80 s; phase 3 ({last['from_s']}..{last['to_s']} s)",
                      *(rise(r) for r in d)))
        lines.append(("D, from 20 s after each change (% of the quota)",
                      *(" / ".join(f"{x:.1f}" for x in r["phases_pct"]) + f"; whole run {r['throttled_pct']:.2f}% throttled"
                        for r in d)))
    if "R" in results and results["R"]["lanes"]:
        three = results["R"]["rows"][-1]
        lanes = ", ".join(f"{lane['quota'] // 1000}k: {lane['goodput_pct']:.1f}% / {lane['throttled_pct']:.2f}%"
                          for lane in results["R"]["lanes"])
        lines.append(("R: three endpoints of 30k / 60k / 90k TPM in one run, 90 s",
                      f"{three['goodput_pct']:.1f}% goodput, {three['throttled_pct']:.2f}% throttled; per lane "
                      f"(goodput / throttled) {lanes}; {three['failed_throttling']} failed (throttling)", "-"))
    if "S" in results:
        def cell(r):
            each = " / ".join(f"{p['tokens_share_pct']:.0f}" for p in r["processes"])
            return (f"{r['goodput_pct']:.1f}% goodput, {r['throttled_pct']:.2f}% throttled; shares {each}%; "
                    f"{r['failed_throttling']} failed (throttling)")
        lines.append(("S: four `--shard I/4` processes at once on one 120k quota, 90 s "
                      f"(boto3: four processes on quarter files)", *(cell(r) for r in results["S"].values())))
    if "F" in results:
        f = results["F"]

        def cell(r):
            return (f"{r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU; {r['ok']} ok, "
                    f"{r['failed_throttling']} failed (throttling)")
        lines.append(("F: 5,000 short records, zero-latency endpoint, no quota, cold start", cell(f[0]), cell(f[2])))
        lines.append(("F with `--rpm 100000` given (no ramp)", cell(f[1]), "-"))
    if not lines:
        return
    print(f"| scenario | bedrock-batch | boto3({workers}) |")
    print("|---|---|---|")
    for scenario, ours, theirs in lines:
        print(f"| {scenario} | {ours} | {theirs} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/bedrock-batch")
    parser.add_argument("--scenarios", default="A,B,D,E,R,S,F,T")
    parser.add_argument("--workers", type=int, default=16, help="boto3 thread pool size")
    args = parser.parse_args()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
    keys = args.scenarios.split(",")
    unknown = [k for k in keys if k not in {*SCENARIOS, "R", "S", "F", "T"}]
    if unknown:
        sys.exit(f"unknown scenarios {unknown}: choose among A, B, D, E, R, S, F, T")
    results = {}
    for key, scenario in (("F", lambda: fast(args.bin, env, args.workers)), ("T", lambda: tight(args.bin, env)),
                          ("R", lambda: regions(args.bin, env)), ("S", lambda: shards(args.bin, env, args.workers))):
        if key in keys:
            results[key] = scenario()
    table = []
    for key in keys:
        if key in SCENARIOS:
            table += [(key, row) for row in side_by_side(SCENARIOS[key], args.bin, env, args.workers)]
    if table:
        print_side_by_side(table)
        print(json.dumps([dict(r, scenario=k) for k, r in table]))
    if results:
        print(json.dumps(results))
    print()
    compact(table, results, args.workers)


if __name__ == "__main__":
    main()
