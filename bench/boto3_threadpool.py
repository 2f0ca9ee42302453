"""The baseline users write by hand: a boto3 ThreadPoolExecutor calling Converse, with
botocore's adaptive retry mode. Kept in the repo so the quota benchmark can run it side by
side with bedrock-batch.

    python bench/boto3_threadpool.py JOB.jsonl --model ID --endpoint-url URL [--workers 16]
        [--usage-log FILE]

--usage-log appends one JSON line per record done (id, input and output tokens, botocore's
retries), flushed at once, so a benchmark that kills the script still knows what it did.
"""

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

import boto3
from botocore.config import Config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("job")
    parser.add_argument("--model", required=True)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--usage-log", help="append a JSON line per record done")
    args = parser.parse_args()

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=args.endpoint_url,
        config=Config(
            retries={"mode": "adaptive", "max_attempts": 10},
            max_pool_connections=args.workers,
        ),
    )

    def summarize(record):
        response = client.converse(
            modelId=args.model,
            messages=[{"role": "user", "content": [{"text": record["text"]}]}],
            inferenceConfig={"maxTokens": args.max_tokens},
        )
        text = response["output"]["message"]["content"][0]["text"]
        return record["id"], text, response["usage"], response["ResponseMetadata"].get("RetryAttempts", 0)

    with open(args.job) as f:
        records = [json.loads(line) for line in f if line.strip()]
    ok = failed = 0
    log = open(args.usage_log, "a") if args.usage_log else None
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(summarize, r) for r in records]
        for future in as_completed(futures):
            try:
                record_id, _text, usage, retries = future.result()
            except Exception as err:  # what a hand-written script does: count and go on
                failed += 1
                print(f"failed: {err}", file=sys.stderr, flush=True)
                continue
            ok += 1
            if log:
                log.write(json.dumps({"id": record_id, "input_tokens": usage["inputTokens"],
                                      "output_tokens": usage["outputTokens"], "retries": retries}) + "\n")
                log.flush()
    print(json.dumps({"ok": ok, "failed": failed}))


if __name__ == "__main__":
    main()
