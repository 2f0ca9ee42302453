"""Resume start-up benchmark: a 1,000,000-record job with 900,000 records done; how long
until the rerun sends its first call. The first run does the 900,000 records for real
(--limit), then the same command without --limit resumes; the time is measured from the
process start to the first request the local server sees (its /_local/stats counter).

    python bench/resume_bench.py --bin target/release/bedrock-batch [--records 1000000 --done 900000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def requests(url):
    with urllib.request.urlopen(f"{url}/_local/stats") as response:
        return json.load(response)["requests"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/bedrock-batch")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--done", type=int, default=900_000)
    args = parser.parse_args()

    server = subprocess.Popen([args.bin, "local-server", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = server.stdout.readline().split("listening on ", 1)[1].strip()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
    try:
        with tempfile.TemporaryDirectory() as work:
            job = os.path.join(work, "job.jsonl")
            with open(job, "w") as f:
                for i in range(args.records):
                    f.write(json.dumps({"id": f"r{i}", "text": f"Ticket {i}: the parcel arrived damaged. The customer asks for a refund."}) + "\n")
            out = os.path.join(work, "run")
            base = [args.bin, "run", job, "--model", MODEL, "--endpoint-url", url, "--out", out, "--quiet", "--concurrency", "64"]
            started = time.monotonic()
            subprocess.run(base + ["--limit", str(args.done)], env=env, check=True)
            first_run = time.monotonic() - started
            results_mb = os.path.getsize(os.path.join(out, "results.jsonl")) / 1e6
            before = requests(url)
            launched = time.monotonic()
            process = subprocess.Popen(base, env=env)
            first_call = None
            while process.poll() is None and first_call is None:
                if requests(url) > before:
                    first_call = time.monotonic() - launched
                    break
                time.sleep(0.005)
            code = process.wait()
            total = time.monotonic() - launched
            with open(os.path.join(out, "summary.json")) as f:
                summary = json.load(f)
            print(f"job file: {os.path.getsize(job) / 1e6:.0f} MB, {args.records} records; first run: {args.done} records in {first_run:.1f} s; results.jsonl {results_mb:.0f} MB")
            print(f"resume: first call after {first_call:.3f} s; finished the remaining {args.records - args.done} records in {total:.1f} s (exit {code})")
            print(f"summary: {summary['records']['total']} records ({summary['records']['ok']} ok); server saw {requests(url)} requests in all")
    finally:
        server.kill()


if __name__ == "__main__":
    sys.exit(main())
