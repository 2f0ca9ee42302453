"""The baseline users write by hand: a boto3 ThreadPoolExecutor calling Converse, with
botocore's adaptive retry mode. Kept in the repo so the quota benchmark can run it side by
side with bedrock-batch.

    python bench/boto3_threadpool.py JOB.jsonl --model ID --endpoint-url URL [--workers 16]
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
        return record["id"], response["output"]["message"]["content"][0]["text"], response["usage"]

    with open(args.job) as f:
        records = [json.loads(line) for line in f if line.strip()]
    ok = failed = 0
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(summarize, r) for r in records]
        for future in as_completed(futures):
            try:
                future.result()
                ok += 1
            except Exception as err:  # what a hand-written script does: count and go on
                failed += 1
                print(f"failed: {err}", file=sys.stderr, flush=True)
    print(json.dumps({"ok": ok, "failed": failed}))


if __name__ == "__main__":
    main()
