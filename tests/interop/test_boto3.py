"""boto3 interop tests for `bedrock-batch local-server`.

These tests drive the local Bedrock Runtime server with the real boto3 client, so they
check the wire protocol (restJson1 bodies and headers, AWS event-stream frames, error
shapes) as botocore understands it, not just as our own Rust client does.

The server binary comes from $BEDROCK_BATCH_BIN (default: target/debug/bedrock-batch in
the repo root). Run the whole suite with tests/interop/run.sh.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.eventstream
import botocore.exceptions
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 15.0

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"  # us-east-1 serves it through its US profile
TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
COHERE = "cohere.embed-english-v3"
UNKNOWN_MODEL = "acme.nothing-v1"

SYSTEM = "Answer in two sentences."  # 24 chars -> 6 tokens
PROMPT = (
    "The quick brown fox jumps over the lazy dog.  It was   a bright, cold day in April! "
    "The clocks were striking thirteen. Nobody noticed."
)  # 134 chars -> 34 tokens
# The fake model keeps the first two sentences, whitespace collapsed: 80 chars -> 20 tokens.
SUMMARY = "The quick brown fox jumps over the lazy dog. It was a bright, cold day in April!"

INVALID_MODEL_MESSAGE = "The provided model identifier is invalid."
ACCESS_DENIED_MESSAGE = "You don't have access to the model with the specified model ID."
TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."
TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."


def tokens(text: str) -> int:
    """The server's token rule: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"text": text}]}


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# --------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------


def server_binary() -> Path:
    configured = os.environ.get("BEDROCK_BATCH_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "bedrock-batch"
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve()
    return path


class ServerProcess:
    """One `bedrock-batch local-server --port 0 ...` child process."""

    def __init__(self, flags: list[str]):
        binary = server_binary()
        if not binary.is_file():
            pytest.fail(
                f"server binary {binary} not found: build it (cargo build) or set BEDROCK_BATCH_BIN",
                pytrace=False,
            )
        self.flags = list(flags)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(binary), "local-server", "--port", "0", *self.flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.url = self._await_listening_line()

    def _stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def _await_listening_line(self) -> str:
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        def read_two() -> None:
            lines.put(stdout.readline())
            lines.put(stdout.readline())

        threading.Thread(target=read_two, daemon=True).start()
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            self.stop()
            pytest.fail(
                f"server {self.flags} printed no 'listening on' line within {STARTUP_TIMEOUT_S}s; "
                f"stderr: {self._stderr_text()!r}",
                pytrace=False,
            )
        prefix = "listening on "
        if not line.startswith(prefix):
            self.stop()
            pytest.fail(
                f"server {self.flags} first stdout line was {line!r}, expected 'listening on http://...'; "
                f"exit code {self.proc.returncode}; stderr: {self._stderr_text()!r}",
                pytrace=False,
            )
        url = line[len(prefix):].strip()
        assert url.startswith("http://127.0.0.1:"), url
        try:
            s3_line = lines.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            s3_line = ""
        s3_prefix = "S3 endpoint "
        assert s3_line.startswith(s3_prefix), f"second stdout line was {s3_line!r}"
        self.s3_url = s3_line[len(s3_prefix):].strip()
        assert self.s3_url.startswith("http://127.0.0.1:") and self.s3_url != url, self.s3_url
        return url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()

    # -- the server's own endpoints ----------------------------------------------------

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_local/stats", timeout=5) as response:
            assert response.status == 200
            return json.load(response)

    def settled_stats(self) -> dict:
        """Stats once no request is in flight (a stream's task ends just after its last frame)."""
        deadline = time.monotonic() + 2.0
        stats = self.stats()
        while stats["in_flight"] != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
            stats = self.stats()
        return stats

    def reset(self) -> dict:
        request = urllib.request.Request(f"{self.url}/_local/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            return json.load(response)


@pytest.fixture(scope="session")
def start_server():
    """Factory: start_server(*flags) starts a fresh server; all are killed at session end."""
    started: list[ServerProcess] = []

    def start(*flags: str) -> ServerProcess:
        server = ServerProcess(list(flags))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server) -> ServerProcess:
    return start_server()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


def make_client(endpoint_url: str):
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(
            # Retries off. Note: botocore's `max_attempts` counts *retries* (it becomes
            # total_max_attempts = max_attempts + 1), so {"max_attempts": 1} would still
            # retry once and double every throttle/fault the server counts.
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=15,
        ),
    )


@pytest.fixture(scope="session")
def client(url):
    return make_client(url)


# --------------------------------------------------------------------------------------
# Helpers over the API
# --------------------------------------------------------------------------------------


def collect_converse_stream(response) -> list[tuple[str, dict]]:
    events = []
    for event in response["stream"]:
        assert len(event) == 1, f"an event-stream event should hold one member: {event}"
        (kind, payload), = event.items()
        events.append((kind, payload))
    return events


def invoke_json(client, model_id: str, body: dict) -> tuple[dict, dict]:
    response = client.invoke_model(
        modelId=model_id,
        body=json.dumps(body),
        contentType="application/json",
        accept="application/json",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["contentType"] == "application/json"
    return json.loads(response["body"].read()), response["ResponseMetadata"]["HTTPHeaders"]


def invoke_stream_chunks(client, model_id: str, body: dict) -> list[dict]:
    response = client.invoke_model_with_response_stream(
        modelId=model_id,
        body=json.dumps(body),
        contentType="application/json",
        accept="application/json",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    chunks = []
    for event in response["body"]:
        assert list(event) == ["chunk"], f"unexpected stream event {event}"
        chunks.append(json.loads(event["chunk"]["bytes"]))
    return chunks


def anthropic_body(prompt: str, max_tokens: int = 200, **extra) -> dict:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        **extra,
    }


def error_of(excinfo) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


# --------------------------------------------------------------------------------------
# Converse
# --------------------------------------------------------------------------------------


def test_the_servers_token_count_is_the_helpers(client):
    # The expected usage numbers below are spelled out literally (6, 34, 20) and `tokens()`
    # computes others: both must be what the server counts (CountTokens of one message).
    for text, expected in [(SYSTEM, 6), (PROMPT, 34), (SUMMARY, 20), ("abcd", 1), ("abcde", 2)]:
        counted = client.count_tokens(
            modelId=SONNET, input={"converse": {"messages": [user(text)]}}
        )["inputTokens"]
        assert counted == tokens(text) == expected, text


def test_converse_summarizes_and_reports_usage(client):
    response = client.converse(
        modelId=HAIKU,
        system=[{"text": SYSTEM}],
        messages=[user(PROMPT)],
        inferenceConfig={"maxTokens": 200, "temperature": 0.2},
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RequestId"], "x-amzn-requestid should be parsed"
    message = response["output"]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == [{"text": SUMMARY}]
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {"inputTokens": 6 + 34, "outputTokens": 20, "totalTokens": 60}
    assert isinstance(response["metrics"]["latencyMs"], int)


def test_converse_latency_is_the_servers_time_to_answer(start_server):
    client = make_client(start_server("--latency-ms", "150").url)
    started = time.monotonic()
    response = client.converse(modelId=HAIKU, messages=[user(PROMPT)])
    round_trip_ms = (time.monotonic() - started) * 1000
    latency = response["metrics"]["latencyMs"]
    # At least the configured 150 ms, and no more than the client waited.
    assert 150 <= latency <= round_trip_ms, (latency, round_trip_ms)


def test_converse_counts_every_message_and_answers_the_last_user_turn(client):
    messages = [user("Hello there."), assistant("Hi! How can I help?"), user(PROMPT)]
    response = client.converse(modelId=HAIKU, system=[{"text": SYSTEM}], messages=messages)
    assert response["output"]["message"]["content"][0]["text"] == SUMMARY
    expected_input = tokens(SYSTEM) + tokens("Hello there.") + tokens("Hi! How can I help?") + tokens(PROMPT)
    assert expected_input == 6 + 3 + 5 + 34
    assert response["usage"]["inputTokens"] == expected_input
    assert response["usage"]["outputTokens"] == 20
    assert response["usage"]["totalTokens"] == expected_input + 20


def test_converse_max_tokens_cuts_the_answer(client):
    response = client.converse(
        modelId=HAIKU, messages=[user(PROMPT)], inferenceConfig={"maxTokens": 3}
    )
    assert response["stopReason"] == "max_tokens"
    assert response["output"]["message"]["content"][0]["text"] == SUMMARY[:12] == "The quick br"
    assert response["usage"]["outputTokens"] == 3
    assert response["usage"]["inputTokens"] == 34


def test_converse_stop_sequence_cuts_the_answer(client):
    response = client.converse(
        modelId=HAIKU,
        messages=[user(PROMPT)],
        inferenceConfig={"maxTokens": 200, "stopSequences": ["April", "lazy"]},
    )
    assert response["stopReason"] == "stop_sequence"
    text = response["output"]["message"]["content"][0]["text"]
    assert text == "The quick brown fox jumps over the "
    assert response["usage"]["outputTokens"] == tokens(text) == 9


def test_converse_accepts_cross_region_profile_ids(client):
    response = client.converse(modelId="us." + HAIKU, messages=[user(PROMPT)])
    assert response["output"]["message"]["content"][0]["text"] == SUMMARY


# --------------------------------------------------------------------------------------
# ConverseStream
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inference_config, stop_reason",
    [
        ({"maxTokens": 200}, "end_turn"),
        ({"maxTokens": 11}, "max_tokens"),
        ({"maxTokens": 200, "stopSequences": ["cold"]}, "stop_sequence"),
    ],
    ids=["end_turn", "max_tokens", "stop_sequence"],
)
def test_converse_stream_matches_converse(client, inference_config, stop_reason):
    request = dict(
        modelId=HAIKU,
        system=[{"text": SYSTEM}],
        messages=[user(PROMPT)],
        inferenceConfig=inference_config,
    )
    reference = client.converse(**request)
    assert reference["stopReason"] == stop_reason

    response = client.converse_stream(**request)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    events = collect_converse_stream(response)
    kinds = [kind for kind, _ in events]

    assert kinds[0] == "messageStart", kinds
    assert events[0][1] == {"role": "assistant"}
    deltas = [payload for kind, payload in events if kind == "contentBlockDelta"]
    assert len(deltas) >= 2, kinds
    # Deltas come as one contiguous run, then the block/message stops, then metadata last.
    first, last = kinds.index("contentBlockDelta"), len(kinds) - 1 - kinds[::-1].index("contentBlockDelta")
    assert set(kinds[first:last + 1]) == {"contentBlockDelta"}, kinds
    assert kinds[last + 1:] == ["contentBlockStop", "messageStop", "metadata"], kinds
    assert all(d["contentBlockIndex"] == 0 for d in deltas)

    text = "".join(d["delta"]["text"] for d in deltas)
    assert text == reference["output"]["message"]["content"][0]["text"]
    assert dict(events)["messageStop"]["stopReason"] == stop_reason
    metadata = events[-1][1]
    assert metadata["usage"] == reference["usage"]
    assert isinstance(metadata["metrics"]["latencyMs"], int)


def test_converse_stream_of_whole_summary(client):
    response = client.converse_stream(modelId=HAIKU, messages=[user(PROMPT)])
    events = collect_converse_stream(response)
    text = "".join(p["delta"]["text"] for k, p in events if k == "contentBlockDelta")
    assert text == SUMMARY
    assert events[-1][1]["usage"] == {"inputTokens": 34, "outputTokens": 20, "totalTokens": 54}


# --------------------------------------------------------------------------------------
# InvokeModel, per model family
# --------------------------------------------------------------------------------------


def test_invoke_titan_v2_embedding(client):
    text = "Refund for a damaged order"
    body, headers = invoke_json(
        client, TITAN_V2, {"inputText": text, "dimensions": 256, "normalize": True}
    )
    embedding = body["embedding"]
    assert len(embedding) == 256
    assert all(isinstance(x, float) for x in embedding)
    assert math.sqrt(sum(x * x for x in embedding)) == pytest.approx(1.0, abs=1e-4)
    assert body["embeddingsByType"]["float"] == embedding
    assert body["inputTextTokenCount"] == tokens(text) == 7
    assert headers["x-amzn-bedrock-input-token-count"] == "7"
    assert headers["x-amzn-bedrock-output-token-count"] == "0"
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0

    # Deterministic: the same text embeds the same way.
    again, _ = invoke_json(client, TITAN_V2, {"inputText": text, "dimensions": 256, "normalize": True})
    assert again["embedding"] == embedding


def test_invoke_titan_v2_default_and_unnormalized(client):
    body, _ = invoke_json(client, TITAN_V2, {"inputText": "hello hello world"})
    assert len(body["embedding"]) == 1024
    raw, _ = invoke_json(
        client, TITAN_V2, {"inputText": "hello hello world", "dimensions": 512, "normalize": False}
    )
    assert len(raw["embedding"]) == 512
    assert math.sqrt(sum(x * x for x in raw["embedding"])) > 1.01


def test_invoke_titan_v1_embedding(client):
    text = "The weather in Lisbon is sunny today."
    body, headers = invoke_json(client, TITAN_V1, {"inputText": text})
    assert len(body["embedding"]) == 1536
    assert body["inputTextTokenCount"] == tokens(text)
    assert headers["x-amzn-bedrock-input-token-count"] == str(tokens(text))


def test_invoke_cohere_embeddings(client):
    texts = [
        "refund for a damaged order",
        "customer wants a refund for a damaged order",
        "the weather in lisbon is sunny today",
    ]
    body, headers = invoke_json(client, COHERE, {"texts": texts, "input_type": "search_document"})
    assert body["response_type"] == "embeddings_floats"
    assert body["texts"] == texts
    assert isinstance(body["id"], str) and body["id"]
    embeddings = body["embeddings"]
    assert len(embeddings) == 3
    assert [len(e) for e in embeddings] == [1024, 1024, 1024]
    similar = cosine(embeddings[0], embeddings[1])
    unrelated = cosine(embeddings[0], embeddings[2])
    assert similar > unrelated + 0.3, (similar, unrelated)
    assert headers["x-amzn-bedrock-input-token-count"] == str(sum(tokens(t) for t in texts))


def test_invoke_anthropic_messages(client):
    request = anthropic_body(PROMPT, max_tokens=200, system=SYSTEM)
    body, headers = invoke_json(client, HAIKU, request)
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "claude-3-haiku-20240307"
    assert body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": SUMMARY}]
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": 6 + 34, "output_tokens": 20}
    assert headers["x-amzn-bedrock-input-token-count"] == "40"
    assert headers["x-amzn-bedrock-output-token-count"] == "20"
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0


def test_invoke_anthropic_max_tokens_and_stop_sequences(client):
    body, _ = invoke_json(client, HAIKU, anthropic_body(PROMPT, max_tokens=2))
    assert body["stop_reason"] == "max_tokens"
    assert body["content"][0]["text"] == "The quic"
    assert body["usage"]["output_tokens"] == 2

    body, _ = invoke_json(client, HAIKU, anthropic_body(PROMPT, stop_sequences=["fox"]))
    assert body["stop_reason"] == "stop_sequence"
    assert body["stop_sequence"] == "fox"
    assert body["content"][0]["text"] == "The quick brown "


def test_invoke_llama(client):
    body, headers = invoke_json(client, LLAMA, {"prompt": PROMPT, "max_gen_len": 100})
    assert body["generation"] == SUMMARY
    assert body["prompt_token_count"] == 34
    assert body["generation_token_count"] == 20
    assert body["stop_reason"] == "stop"
    assert headers["x-amzn-bedrock-input-token-count"] == "34"
    assert headers["x-amzn-bedrock-output-token-count"] == "20"

    cut, _ = invoke_json(client, LLAMA, {"prompt": PROMPT, "max_gen_len": 4})
    assert cut["generation"] == SUMMARY[:16]
    assert cut["generation_token_count"] == 4
    assert cut["stop_reason"] == "length"


def test_invoke_llama_chat_template(client):
    prompt = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        f"{PROMPT}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    body, _ = invoke_json(client, LLAMA, {"prompt": prompt, "max_gen_len": 100})
    assert body["generation"] == SUMMARY
    assert body["prompt_token_count"] == tokens(prompt)


# --------------------------------------------------------------------------------------
# InvokeModelWithResponseStream
# --------------------------------------------------------------------------------------


def test_invoke_stream_anthropic(client):
    request = anthropic_body(PROMPT, max_tokens=200, system=SYSTEM)
    reference, _ = invoke_json(client, HAIKU, request)
    chunks = invoke_stream_chunks(client, HAIKU, request)
    types = [c["type"] for c in chunks]
    assert types[:2] == ["message_start", "content_block_start"], types
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"], types
    assert set(types[2:-3]) == {"content_block_delta"}, types
    assert len(types[2:-3]) >= 2

    start = chunks[0]["message"]
    assert start["role"] == "assistant" and start["model"] == "claude-3-haiku-20240307"
    assert start["usage"]["input_tokens"] == reference["usage"]["input_tokens"]
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert text == reference["content"][0]["text"] == SUMMARY
    message_delta = chunks[-2]
    assert message_delta["delta"]["stop_reason"] == reference["stop_reason"]
    assert message_delta["usage"]["output_tokens"] == reference["usage"]["output_tokens"]

    assert all("amazon-bedrock-invocationMetrics" not in c for c in chunks[:-1])
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == 40
    assert metrics["outputTokenCount"] == 20
    assert metrics["invocationLatency"] >= metrics["firstByteLatency"] >= 0


def test_invoke_stream_reports_content_type(client):
    # InvokeModelWithResponseStreamResponse.contentType is a *required* member, bound to the
    # X-Amzn-Bedrock-Content-Type header (the MIME type of the chunks, i.e. the `accept`
    # type); the HTTP Content-Type itself is the event-stream type.
    response = client.invoke_model_with_response_stream(
        modelId=LLAMA, body=json.dumps({"prompt": PROMPT}), accept="application/json"
    )
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    list(response["body"])
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert "x-amzn-bedrock-content-type" in headers, (
        "server discrepancy: InvokeModelWithResponseStream responses lack the required "
        f"X-Amzn-Bedrock-Content-Type header, so boto3's response has no 'contentType'; headers: {headers}"
    )
    assert response["contentType"] == "application/json"


def test_invoke_stream_llama(client):
    request = {"prompt": PROMPT, "max_gen_len": 100}
    reference, _ = invoke_json(client, LLAMA, request)
    chunks = invoke_stream_chunks(client, LLAMA, request)
    assert len(chunks) >= 3
    text = "".join(c["generation"] for c in chunks)
    assert text == reference["generation"] == SUMMARY
    assert chunks[0]["prompt_token_count"] == 34
    assert all(c["stop_reason"] is None for c in chunks[:-1])
    counts = [c["generation_token_count"] for c in chunks]
    assert counts == sorted(counts), "generation_token_count should only grow"
    last = chunks[-1]
    assert last["stop_reason"] == "stop"
    assert last["generation_token_count"] == 20
    metrics = last["amazon-bedrock-invocationMetrics"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (34, 20)
    assert all("amazon-bedrock-invocationMetrics" not in c for c in chunks[:-1])


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["converse", "converse_stream", "invoke_model", "invoke_stream"])
def test_unknown_model_is_a_validation_exception(client, operation):
    calls = {
        "converse": lambda: client.converse(modelId=UNKNOWN_MODEL, messages=[user(PROMPT)]),
        "converse_stream": lambda: client.converse_stream(modelId=UNKNOWN_MODEL, messages=[user(PROMPT)]),
        "invoke_model": lambda: client.invoke_model(modelId=UNKNOWN_MODEL, body=b"{}"),
        "invoke_stream": lambda: client.invoke_model_with_response_stream(modelId=UNKNOWN_MODEL, body=b"{}"),
    }
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        calls[operation]()
    assert isinstance(excinfo.value, client.exceptions.ValidationException)
    assert error_of(excinfo) == ("ValidationException", INVALID_MODEL_MESSAGE, 400)
    assert excinfo.value.response["ResponseMetadata"]["RequestId"]


def test_empty_messages_is_a_validation_exception(client):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.converse(modelId=HAIKU, messages=[])
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert "at least one message" in message


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"messages": [assistant("Hi.")]}, "must start with a user message"),
        ({"messages": [user("a"), user("b")]}, "alternate"),
        ({"messages": [user(PROMPT)], "inferenceConfig": {"temperature": 1.5}}, "temperature"),
    ],
    ids=["assistant_first", "not_alternating", "temperature"],
)
def test_converse_validation_messages(client, kwargs, fragment):
    with pytest.raises(client.exceptions.ValidationException) as excinfo:
        client.converse(modelId=HAIKU, **kwargs)
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert fragment in message


def test_native_validation_errors(client):
    # An Anthropic body without anthropic_version, and Titan v2 with an invalid dimension.
    with pytest.raises(client.exceptions.ValidationException) as excinfo:
        client.invoke_model(modelId=HAIKU, body=json.dumps({"max_tokens": 5, "messages": [user("x")]}))
    assert "anthropic_version" in error_of(excinfo)[1]
    with pytest.raises(client.exceptions.ValidationException) as excinfo:
        client.invoke_model(modelId=TITAN_V2, body=json.dumps({"inputText": "x", "dimensions": 300}))
    assert "dimensions" in error_of(excinfo)[1]
    # Embedding models do not stream, and Converse does not take them.
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model_with_response_stream(modelId=TITAN_V2, body=json.dumps({"inputText": "x"}))
    with pytest.raises(client.exceptions.ValidationException):
        client.converse(modelId=TITAN_V2, messages=[user("x")])


THROTTLE_PROMPT = (
    "Quota planning matters because every request reserves its maxTokens up front, before "
    "the model writes a word. The unused part is refunded later, so the bucket recovers once "
    "the answer arrives in full."
)  # 200 chars, two sentences -> 50 input tokens, answered whole: 50 output tokens


def test_token_quota_throttles(start_server):
    server = start_server("--tpm", "1000")
    client = make_client(server.url)
    request = dict(modelId=HAIKU, messages=[user(THROTTLE_PROMPT)], inferenceConfig={"maxTokens": 900})

    # Reserves 50 + 900 of 1000, uses 50 + 50: 900 remain, less than the next 950.
    first = client.converse(**request)
    assert first["usage"] == {"inputTokens": 50, "outputTokens": 50, "totalTokens": 100}

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.converse(**request)
    assert isinstance(excinfo.value, client.exceptions.ThrottlingException)
    assert error_of(excinfo) == ("ThrottlingException", TOO_MANY_TOKENS, 429)

    # A small request still fits in what remains.
    small = client.converse(modelId=HAIKU, messages=[user("Hi.")], inferenceConfig={"maxTokens": 10})
    assert small["output"]["message"]["content"][0]["text"] == "Hi."

    stats = server.settled_stats()
    assert stats["throttles"] == 1
    assert stats["by_status"] == {"200": 2, "429": 1}
    assert stats["by_model"][HAIKU]["throttled"] == 1
    assert stats["by_model"][HAIKU]["ok"] == 2


def test_request_quota_throttles(start_server):
    server = start_server("--rpm", "2")
    client = make_client(server.url)
    for _ in range(2):
        client.converse(modelId=HAIKU, messages=[user(PROMPT)])
    with pytest.raises(client.exceptions.ThrottlingException) as excinfo:
        client.converse(modelId=HAIKU, messages=[user(PROMPT)])
    assert error_of(excinfo) == ("ThrottlingException", TOO_MANY_REQUESTS, 429)
    # Quotas are per model: another model is unaffected.
    body, _ = invoke_json(client, LLAMA, {"prompt": PROMPT})
    assert body["generation"] == SUMMARY


def test_denied_model_is_access_denied(start_server):
    server = start_server("--deny-model", "anthropic.*")
    client = make_client(server.url)
    for call in (
        lambda: client.converse(modelId=HAIKU, messages=[user(PROMPT)]),
        lambda: client.converse(modelId="us." + HAIKU, messages=[user(PROMPT)]),
        lambda: client.invoke_model(modelId=HAIKU, body=json.dumps(anthropic_body(PROMPT))),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            call()
        assert isinstance(excinfo.value, client.exceptions.AccessDeniedException)
        assert error_of(excinfo) == ("AccessDeniedException", ACCESS_DENIED_MESSAGE, 403)
    # Models the pattern does not match are served as usual.
    response = client.converse(modelId=LLAMA, messages=[user(PROMPT)])
    assert response["output"]["message"]["content"][0]["text"] == SUMMARY
    assert server.settled_stats()["by_status"] == {"200": 1, "403": 3}


# --------------------------------------------------------------------------------------
# Injected faults, as boto3 sees them
# --------------------------------------------------------------------------------------


def test_fail_rate_gives_5xx(start_server):
    server = start_server("--fail-rate", "1")
    client = make_client(server.url)
    for i in range(6):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            client.converse(modelId=HAIKU, messages=[user(f"Request number {i}.")])
        code, _, status = error_of(excinfo)
        assert (code, status) in {("InternalServerException", 500), ("ServiceUnavailableException", 503)}
    stats = server.settled_stats()
    faults = stats["faults"]
    assert faults["internal_server"] + faults["service_unavailable"] == 6
    assert stats["by_model"][HAIKU]["errors"] == 6
    assert stats["output_tokens"] == 0


def test_timeout_rate_gives_model_timeout(start_server):
    server = start_server("--timeout-rate", "1", "--timeout-delay-ms", "50")
    client = make_client(server.url)
    with pytest.raises(client.exceptions.ModelTimeoutException) as excinfo:
        client.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": PROMPT}))
    assert error_of(excinfo)[0::2] == ("ModelTimeoutException", 408)
    assert server.settled_stats()["faults"]["timeout"] == 1


def test_reset_rate_closes_the_connection(start_server):
    server = start_server("--reset-rate", "1")
    client = make_client(server.url)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client.converse(modelId=HAIKU, messages=[user(PROMPT)])
    stats = server.settled_stats()
    assert stats["faults"]["reset"] == 1
    assert stats["by_status"] == {}


def test_stream_throttle_rate_cuts_the_stream(start_server):
    server = start_server("--stream-throttle-rate", "1")
    client = make_client(server.url)
    response = client.converse_stream(modelId=HAIKU, messages=[user(PROMPT)])
    kinds = []
    with pytest.raises(botocore.exceptions.EventStreamError) as excinfo:
        for event in response["stream"]:
            kinds.extend(event)
    # botocore names a stream exception by its union member, as Bedrock sends it.
    assert excinfo.value.response["Error"]["Code"] == "throttlingException"
    assert excinfo.value.response["Error"]["Message"] == TOO_MANY_TOKENS
    assert kinds[0] == "messageStart"
    assert "contentBlockDelta" in kinds and "messageStop" not in kinds
    stats = server.settled_stats()
    assert stats["faults"]["stream_throttle"] == 1
    assert stats["throttles"] == 1


def test_garbage_rate_breaks_the_body(start_server):
    server = start_server("--garbage-rate", "1")
    client = make_client(server.url)
    # A truncated JSON body: botocore keeps the text as an error-style message and the
    # modelled output members are missing.
    response = client.converse(modelId=HAIKU, messages=[user(PROMPT)])
    assert "output" not in response and "usage" not in response
    # A stream frame whose checksum does not match.
    stream = client.converse_stream(modelId=HAIKU, messages=[user(PROMPT)])
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        list(stream["stream"])
    assert server.settled_stats()["faults"]["garbage"] == 2


# --------------------------------------------------------------------------------------
# /_local/stats
# --------------------------------------------------------------------------------------


def test_stats_add_up_to_what_boto3_reported(start_server):
    server = start_server()
    client = make_client(server.url)

    # Traffic before a reset does not count.
    client.converse(modelId=HAIKU, messages=[user("Warm up.")])
    assert server.stats()["requests"] == 1
    assert server.reset() == {"reset": True}
    cleared = server.stats()
    assert cleared["requests"] == 0 and cleared["by_status"] == {} and cleared["input_tokens"] == 0

    inputs, outputs = [], []

    converse_request = dict(modelId=HAIKU, system=[{"text": SYSTEM}], messages=[user(PROMPT)])
    for _ in range(2):  # the same body twice: one duplicate success
        usage = client.converse(**converse_request)["usage"]
        inputs.append(usage["inputTokens"])
        outputs.append(usage["outputTokens"])

    events = collect_converse_stream(
        client.converse_stream(modelId=LLAMA, messages=[user("Streams count too. Really.")])
    )
    usage = events[-1][1]["usage"]
    inputs.append(usage["inputTokens"])
    outputs.append(usage["outputTokens"])

    body, headers = invoke_json(client, HAIKU, anthropic_body(THROTTLE_PROMPT))
    assert int(headers["x-amzn-bedrock-input-token-count"]) == body["usage"]["input_tokens"]
    inputs.append(body["usage"]["input_tokens"])
    outputs.append(body["usage"]["output_tokens"])

    _, headers = invoke_json(client, TITAN_V2, {"inputText": "count my tokens please"})
    inputs.append(int(headers["x-amzn-bedrock-input-token-count"]))
    outputs.append(int(headers["x-amzn-bedrock-output-token-count"]))

    chunks = invoke_stream_chunks(client, LLAMA, {"prompt": PROMPT, "max_gen_len": 50})
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    inputs.append(metrics["inputTokenCount"])
    outputs.append(metrics["outputTokenCount"])

    with pytest.raises(client.exceptions.ValidationException):
        client.converse(modelId=UNKNOWN_MODEL, messages=[user(PROMPT)])
    with pytest.raises(client.exceptions.ValidationException):
        client.converse(modelId=HAIKU, messages=[])

    assert inputs == [40, 40, 7, 50, 6, 34]
    assert outputs == [20, 20, 7, 50, 0, 20]

    stats = server.settled_stats()
    assert stats["requests"] == 8
    assert stats["by_status"] == {"200": 6, "400": 2}
    assert stats["by_route"] == {
        "converse": 4,
        "converse-stream": 1,
        "invoke": 2,
        "invoke-with-response-stream": 1,
    }
    assert stats["input_tokens"] == sum(inputs)
    assert stats["output_tokens"] == sum(outputs)
    assert stats["cache_read_input_tokens"] == 0 and stats["cache_write_input_tokens"] == 0
    assert stats["throttles"] == 0
    assert stats["duplicate_successes"] == 1
    assert stats["in_flight"] == 0
    assert stats["max_in_flight"] >= 1
    assert all(count == 0 for count in stats["faults"].values()), stats["faults"]
    assert stats["by_model"] == {
        HAIKU: {"requests": 4, "ok": 3, "throttled": 0, "errors": 1,
                "input_tokens": 40 + 40 + 50, "output_tokens": 20 + 20 + 50},
        LLAMA: {"requests": 2, "ok": 2, "throttled": 0, "errors": 0,
                "input_tokens": 7 + 34, "output_tokens": 7 + 20},
        TITAN_V2: {"requests": 1, "ok": 1, "throttled": 0, "errors": 0,
                   "input_tokens": 6, "output_tokens": 0},
        UNKNOWN_MODEL: {"requests": 1, "ok": 0, "throttled": 0, "errors": 1,
                        "input_tokens": 0, "output_tokens": 0},
    }


# --------------------------------------------------------------------------------------
# Tool use (the --schema path) and export read back with pyarrow
# --------------------------------------------------------------------------------------

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "question"]},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 60},
        "needs_human": {"type": "boolean"},
    },
    "required": ["category", "urgency", "summary", "needs_human"],
}


def tool_config(schema=TICKET_SCHEMA, name="record_output", choice=None) -> dict:
    return {
        "tools": [{"toolSpec": {"name": name, "inputSchema": {"json": schema}}}],
        "toolChoice": choice or {"tool": {"name": name}},
    }


def assert_ticket(data: dict) -> None:
    assert set(data) == set(TICKET_SCHEMA["properties"]), data
    assert data["category"] in ("billing", "bug", "question")
    assert isinstance(data["urgency"], int) and 1 <= data["urgency"] <= 5
    assert isinstance(data["summary"], str) and len(data["summary"]) <= 60
    assert isinstance(data["needs_human"], bool)


def test_forced_tool_answers_with_conforming_input(client):
    request = dict(modelId=HAIKU, messages=[user(PROMPT)], toolConfig=tool_config())
    response = client.converse(**request)
    assert response["stopReason"] == "tool_use"
    (block,) = response["output"]["message"]["content"]
    tool_use = block["toolUse"]
    assert tool_use["name"] == "record_output"
    assert tool_use["toolUseId"].startswith("tooluse_")
    assert_ticket(tool_use["input"])
    # Deterministic: the same text gives the same input.
    again = client.converse(**request)["output"]["message"]["content"][0]["toolUse"]["input"]
    assert again == tool_use["input"]

    events = collect_converse_stream(client.converse_stream(**request))
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["messageStart", "contentBlockStart"], kinds
    start = events[1][1]["start"]["toolUse"]
    assert start == {"toolUseId": tool_use["toolUseId"], "name": "record_output"}
    pieces = [p["delta"]["toolUse"]["input"] for k, p in events if k == "contentBlockDelta"]
    assert len(pieces) >= 2
    assert json.loads("".join(pieces)) == tool_use["input"]
    assert dict(events)["messageStop"]["stopReason"] == "tool_use"


@pytest.mark.parametrize(
    "config, fragment",
    [
        (tool_config(choice={"tool": {"name": "other"}}), "does not name a tool"),
        (tool_config(name="has space"), "regular expression"),
        ({"tools": [{"toolSpec": {"name": "x", "inputSchema": {"json": {"type": "string"}}}}]},
         "\"type\": \"object\""),
    ],
)
def test_tool_config_validation(client, config, fragment):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.converse(modelId=HAIKU, messages=[user(PROMPT)], toolConfig=config)
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert fragment in error["Message"], error["Message"]


def test_schema_violation_rate_breaks_the_input(start_server):
    server = start_server("--schema-violation-rate", "1")
    client = make_client(server.url)
    response = client.converse(modelId=HAIKU, messages=[user(PROMPT)], toolConfig=tool_config())
    data = response["output"]["message"]["content"][0]["toolUse"]["input"]
    assert "category" not in data, "the first required field is dropped"


def run_binary(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    return subprocess.run([str(server_binary()), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_export_reads_back_in_pyarrow(url, tmp_path):
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    tickets = [f"Ticket {i}: the invoice of order {i} was charged twice." for i in range(25)]
    (tmp_path / "tickets.jsonl").write_text(
        "".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(tickets)))
    (tmp_path / "schema.json").write_text(json.dumps(TICKET_SCHEMA))
    ran = run_binary("run", "tickets.jsonl", "--model", HAIKU, "--endpoint-url", url,
                     "--schema", "schema.json", "--out", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    exported = run_binary("export", "run", "--format", "parquet", "--out", "t.parquet",
                          "--with-input", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr

    table = pq.read_table(tmp_path / "t.parquet")
    assert table.column_names == [
        "id", "record", "status", "model", "output", "stop_reason", "input_tokens",
        "output_tokens", "cache_read_input_tokens", "cache_write_input_tokens", "latency_ms",
        "attempts", "error_kind", "error_message", "cost_usd", "service_tier", "data.category", "data.urgency",
        "data.summary", "data.needs_human", "input.id", "input.text",
    ]
    assert table.schema.field("record").type == pa.uint64()
    assert table.schema.field("data.urgency").type == pa.int64()
    assert table.schema.field("data.needs_human").type == pa.bool_()
    assert table.schema.field("data.category").type == pa.string()
    rows = table.to_pylist()
    assert [r["record"] for r in rows] == list(range(1, 26))
    assert [r["input.text"] for r in rows] == tickets
    for row in rows:
        assert_ticket({k[5:]: v for k, v in row.items() if k.startswith("data.")})

    exported = run_binary("export", "run", "--format", "csv", "--out", "t.csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    csv_table = pyarrow.csv.read_csv(tmp_path / "t.csv")
    assert csv_table.column_names == table.column_names[:20]
    assert csv_table.column("record").to_pylist() == list(range(1, 26))
    assert csv_table.column("data.urgency").to_pylist() == table.column("data.urgency").to_pylist()


def test_embeddings_export_as_float32_lists_in_pyarrow(url, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "docs.jsonl").write_text(
        "".join(json.dumps({"text": f"Document {i} about rivers."}) + "\n" for i in range(10)))
    ran = run_binary("run", "docs.jsonl", "--model", TITAN_V2, "--dimensions", "256",
                     "--endpoint-url", url, "--out", "run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    exported = run_binary("export", "run", "--format", "parquet", "--out", "v.parquet",
                          cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    vectors = table.column("embedding").to_pylist()
    assert len(vectors) == 10 and all(len(v) == 256 for v in vectors)


def test_parquet_job_file_written_by_pyarrow(url, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"Note {i}: the river rises in spring and floods the lower town." for i in range(12)]
    pq.write_table(pa.table({"id": [f"n{i}" for i in range(12)], "text": texts,
                             "score": [float(i) / 2 for i in range(12)]}),
                   tmp_path / "notes.parquet")
    (tmp_path / "notes.jsonl").write_text(
        "".join(json.dumps({"id": f"n{i}", "text": t, "score": i / 2}) + "\n"
                for i, t in enumerate(texts)))
    outputs = {}
    for job in ("notes.parquet", "notes.jsonl"):
        ran = run_binary("run", job, "--model", HAIKU, "--endpoint-url", url,
                         "--prompt-template", "{text} (score {score})", "--out", f"run-{job}",
                         cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        lines = [json.loads(line) for line in (tmp_path / f"run-{job}" / "results.jsonl").read_text().splitlines()]
        outputs[job] = sorted((line["id"], line["output"], line["usage"]["input_tokens"]) for line in lines)
    assert outputs["notes.parquet"] == outputs["notes.jsonl"]


# --------------------------------------------------------------------------------------
# Knowledge Bases (bedrock-agent-runtime)
# --------------------------------------------------------------------------------------

KB_FILES = {
    "returns.md": "# Returns\n\nRefunds reach the original card within five business days. Gift cards cannot be returned.",
    "shipping.txt": "Parcels leave the Lisbon warehouse every weekday. Express delivery costs nine euros.",
}
# botocore checks ids client-side: ten letters and digits, as Bedrock makes them.
KB_ID = "KBTEST0001"
KB_BUCKET = "s3://knowledge-base-kbtest0001/"


@pytest.fixture(scope="session")
def kb_server(start_server, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("kb")
    for name, text in KB_FILES.items():
        (corpus / name).write_text(text)
    return start_server("--knowledge-base", f"{KB_ID}={corpus}")


@pytest.fixture(scope="session")
def agent(kb_server):
    return boto3.client(
        "bedrock-agent-runtime",
        region_name="us-east-1",
        endpoint_url=kb_server.url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def rag_config(kb_id: str, model_arn: str, **extra) -> dict:
    return {
        "type": "KNOWLEDGE_BASE",
        "knowledgeBaseConfiguration": {"knowledgeBaseId": kb_id, "modelArn": model_arn, **extra},
    }


HAIKU_ARN = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"


def test_retrieve_ranks_chunks(agent):
    response = agent.retrieve(
        knowledgeBaseId=KB_ID,
        retrievalQuery={"text": "how many days until refunds reach my card"},
        retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 1}},
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    (result,) = response["retrievalResults"]
    assert result["content"]["text"] == KB_FILES["returns.md"]
    assert result["location"] == {"type": "S3", "s3Location": {"uri": KB_BUCKET + "returns.md"}}
    assert 0 < result["score"] <= 1


def test_retrieve_and_generate_cites_its_sources(agent):
    response = agent.retrieve_and_generate(
        input={"text": "What does express delivery cost?"},
        retrieveAndGenerateConfiguration=rag_config(
            KB_ID, HAIKU_ARN, generationConfiguration={"inferenceConfig": {"textInferenceConfig": {"maxTokens": 100}}}
        ),
    )
    assert response["sessionId"]
    output = response["output"]["text"]
    first = response["citations"][0]
    part = first["generatedResponsePart"]["textResponsePart"]["text"]
    assert part in output
    reference = first["retrievedReferences"][0]
    assert reference["location"]["s3Location"]["uri"] == KB_BUCKET + "shipping.txt"
    assert part in reference["content"]["text"]


def test_knowledge_base_errors(agent, kb_server):
    with pytest.raises(agent.exceptions.ResourceNotFoundException) as excinfo:
        agent.retrieve(knowledgeBaseId="NOPE123456", retrievalQuery={"text": "x"})
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert "NOPE123456" in message
    with pytest.raises(agent.exceptions.ValidationException) as excinfo:
        agent.retrieve_and_generate(
            input={"text": "x"},
            retrieveAndGenerateConfiguration=rag_config(KB_ID, "arn:aws:bedrock:us-east-1::foundation-model/acme.nothing-v1"),
        )
    assert error_of(excinfo) == ("ValidationException", INVALID_MODEL_MESSAGE, 400)
    with pytest.raises(agent.exceptions.ValidationException):
        agent.retrieve_and_generate(
            input={"text": "x"},
            retrieveAndGenerateConfiguration=rag_config(
                KB_ID, HAIKU_ARN, generationConfiguration={"promptTemplate": {"textPromptTemplate": "no variable"}}
            ),
        )
    stats = kb_server.settled_stats()
    assert stats["by_route"]["retrieve"] >= 2
    assert stats["by_route"]["retrieve-and-generate"] >= 3


# --------------------------------------------------------------------------------------
# Batch Inference: the `bedrock` control plane and the server's S3 endpoint
# --------------------------------------------------------------------------------------

BATCH_BUCKET = "interop-batch"
BATCH_ROLE = "arn:aws:iam::123456789012:role/BatchRole"
ENDED = {"Completed", "Failed", "Stopped", "PartiallyCompleted", "Expired"}


def batch_clients(server: ServerProcess):
    config = botocore.config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=15,
        s3={"addressing_style": "path"},
    )
    common = dict(
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )
    bedrock = boto3.client("bedrock", endpoint_url=server.url, **common)
    s3 = boto3.client("s3", endpoint_url=server.s3_url, **common)
    return bedrock, s3


def batch_records(n: int) -> list[dict]:
    return [
        {
            "recordId": f"R{i:06d}",
            "modelInput": {
                "messages": [user(f"Question {i} is short. The rest is detail.")],
                "inferenceConfig": {"maxTokens": 30},
            },
        }
        for i in range(n)
    ]


def upload_records(s3, key: str, records: list[dict]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    s3.put_object(Bucket=BATCH_BUCKET, Key=key, Body=body)


def create_batch_job(bedrock, name: str, input_uri: str, **extra) -> str:
    response = bedrock.create_model_invocation_job(
        jobName=name,
        roleArn=BATCH_ROLE,
        modelId=HAIKU,
        modelInvocationType="Converse",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BATCH_BUCKET}/out/"}},
        **extra,
    )
    return response["jobArn"]


def wait_job(bedrock, arn: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = bedrock.get_model_invocation_job(jobIdentifier=arn)
        if job["status"] in ENDED:
            return job
        time.sleep(0.05)
    pytest.fail(f"job {arn} did not end within {timeout_s}s")


@pytest.fixture(scope="session")
def batch_server(start_server) -> ServerProcess:
    return start_server(
        "--s3-bucket", BATCH_BUCKET, "--batch-step-ms", "10", "--batch-records-per-sec", "0"
    )


def test_batch_job_runs_through_boto3(batch_server):
    bedrock, s3 = batch_clients(batch_server)
    runtime = make_client(batch_server.url)
    records = batch_records(120)
    upload_records(s3, "in/part-00001.jsonl", records)

    token = "interop-run-part-00001"
    arn = create_batch_job(
        bedrock, "interop-job", f"s3://{BATCH_BUCKET}/in/", clientRequestToken=token,
        timeoutDurationInHours=48,
    )
    assert arn.startswith("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"), arn
    again = create_batch_job(
        bedrock, "interop-job", f"s3://{BATCH_BUCKET}/in/", clientRequestToken=token
    )
    assert again == arn
    stats = batch_server.stats()["batch"]
    assert stats["jobs_created"] == 1 and stats["create_calls"] == 2

    job = wait_job(bedrock, arn)
    assert job["status"] == "Completed", job
    assert job["jobName"] == "interop-job"
    assert job["clientRequestToken"] == token
    assert job["modelInvocationType"] == "Converse"
    assert job["timeoutDurationInHours"] == 48
    assert job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == f"s3://{BATCH_BUCKET}/in/"
    for field in ("submitTime", "lastModifiedTime", "endTime", "jobExpirationTime"):
        assert hasattr(job[field], "isoformat"), (field, job[field])
    assert job["endTime"] >= job["submitTime"]
    assert (job["totalRecordCount"], job["processedRecordCount"]) == (120, 120)
    assert (job["successRecordCount"], job["errorRecordCount"]) == (120, 0)

    listed = bedrock.list_model_invocation_jobs(nameContains="interop", statusEquals="Completed")
    assert [s["jobArn"] for s in listed["invocationJobSummaries"]] == [arn]
    assert listed["invocationJobSummaries"][0]["processedRecordCount"] == 120

    job_id = arn.rsplit("/", 1)[1]
    body = s3.get_object(Bucket=BATCH_BUCKET, Key=f"out/{job_id}/part-00001.jsonl.out")["Body"]
    lines = [json.loads(line) for line in body.read().decode().splitlines()]
    by_id = {line["recordId"]: line for line in lines}
    assert len(by_id) == len(lines) == 120
    for record in records[:20]:
        answer = runtime.converse(modelId=HAIKU, **record["modelInput"])
        output = by_id[record["recordId"]]["modelOutput"]
        assert output["output"] == answer["output"]
        assert output["stopReason"] == answer["stopReason"]
        assert output["usage"] == answer["usage"]
    manifest = json.loads(
        s3.get_object(Bucket=BATCH_BUCKET, Key=f"out/{job_id}/manifest.json.out")["Body"].read()
    )
    assert manifest["processedRecordCount"] == 120 and manifest["errorRecordCount"] == 0
    ranged = s3.get_object(
        Bucket=BATCH_BUCKET, Key=f"out/{job_id}/manifest.json.out", Range="bytes=0-0"
    )
    assert ranged["Body"].read() == b"{"


def test_batch_errors_stop_and_pages_through_boto3(start_server):
    server = start_server(
        "--s3-bucket", BATCH_BUCKET, "--batch-step-ms", "10", "--batch-records-per-sec", "100"
    )
    bedrock, s3 = batch_clients(server)
    upload_records(s3, "in/x.jsonl", batch_records(400))

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        create_batch_job(bedrock, "bad name", f"s3://{BATCH_BUCKET}/in/")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "jobName" in raised.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        bedrock.create_model_invocation_job(
            jobName="badrole", roleArn="arn:aws:iam::1:role/x", modelId=HAIKU,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BATCH_BUCKET}/in/"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BATCH_BUCKET}/out/"}},
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        bedrock.get_model_invocation_job(jobIdentifier="nosuchjob123")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    arn = create_batch_job(bedrock, "slow-job", f"s3://{BATCH_BUCKET}/in/")
    deadline = time.monotonic() + 10
    while bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] != "InProgress":
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.02)
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    job = wait_job(bedrock, arn)
    assert job["status"] == "Stopped"
    # Stopped before the end (400 records at 100 a second), and what it did is on S3: one
    # output line per processed record, the same count in the manifest.
    processed = job["processedRecordCount"]
    assert processed < 400, processed
    job_id = arn.rsplit("/", 1)[1]
    manifest = json.loads(
        s3.get_object(Bucket=BATCH_BUCKET, Key=f"out/{job_id}/manifest.json.out")["Body"].read()
    )
    assert manifest["processedRecordCount"] == processed
    body = s3.get_object(Bucket=BATCH_BUCKET, Key=f"out/{job_id}/x.jsonl.out")["Body"]
    assert len(body.read().decode().splitlines()) == processed
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert raised.value.response["Error"]["Code"] == "ValidationException"

    for name in ("page-a", "page-b"):
        create_batch_job(bedrock, name, f"s3://{BATCH_BUCKET}/in/")
    names = []
    token = None
    for _ in range(10):
        kwargs = {"maxResults": 1, "sortOrder": "Ascending"}
        if token:
            kwargs["nextToken"] = token
        page = bedrock.list_model_invocation_jobs(**kwargs)
        names += [s["jobName"] for s in page["invocationJobSummaries"]]
        token = page.get("nextToken")
        if not token:
            break
    assert names == ["slow-job", "page-a", "page-b"]
    for name in ("page-a", "page-b"):
        arn = next(
            s["jobArn"]
            for s in bedrock.list_model_invocation_jobs(nameContains=name)["invocationJobSummaries"]
        )
        bedrock.stop_model_invocation_job(jobIdentifier=arn)


# --------------------------------------------------------------------------------------
# Service tiers, native structured output and CountTokens (boto3 >= 1.43.11 knows them)
# --------------------------------------------------------------------------------------

NOVA = "amazon.nova-pro-v1:0"  # priority and flex; no structured output, no CountTokens
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # structured output and CountTokens (a profile in us-east-1)


@pytest.mark.parametrize("tier", ["default", "priority", "flex"])
def test_converse_reports_the_service_tier(client, tier):
    response = client.converse(modelId=NOVA, messages=[user(PROMPT)], serviceTier={"type": tier})
    assert response["serviceTier"] == {"type": tier}


def test_converse_stream_metadata_reports_the_service_tier(client):
    response = client.converse_stream(
        modelId=NOVA, messages=[user(PROMPT)], serviceTier={"type": "flex"}
    )
    metadata = [payload for kind, payload in collect_converse_stream(response) if kind == "metadata"]
    assert metadata[0]["serviceTier"] == {"type": "flex"}


def test_invoke_model_service_tier_header(client):
    response = client.invoke_model(
        modelId="us.anthropic.claude-opus-4-7",
        body=json.dumps(anthropic_body(PROMPT, max_tokens=50)),
        serviceTier="priority",
    )
    assert response["serviceTier"] == "priority"
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-service-tier"] == "priority"


def test_service_tier_refusals(client):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.converse(modelId=HAIKU, messages=[user(PROMPT)], serviceTier={"type": "flex"})
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(f"Invocation of model ID {HAIKU} with the flex service tier")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.converse(modelId=NOVA, messages=[user(PROMPT)], serviceTier={"type": "reserved"})
    assert error_of(excinfo) == ("ValidationException", "Reservation not found.", 400)


def test_flex_is_shed_first(start_server):
    server = start_server("--tpm", "1000")
    client = make_client(server.url)
    prompt = PROMPT * 3
    shed = None
    for _ in range(20):
        try:
            client.converse(modelId=NOVA, messages=[user(prompt)],
                            inferenceConfig={"maxTokens": 10}, serviceTier={"type": "flex"})
        except botocore.exceptions.ClientError as err:
            shed = err
            break
    assert shed is not None, "flex was never throttled"
    assert shed.response["Error"]["Code"] == "ThrottlingException"
    client.converse(modelId=NOVA, messages=[user(prompt)], inferenceConfig={"maxTokens": 10})
    stats = server.stats()
    assert stats["by_tier"]["flex"]["throttled"] == 1
    assert stats["by_tier"]["default"] == {"requests": 1, "ok": 1, "throttled": 0}


def output_config(schema) -> dict:
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
        "schema": json.dumps(schema), "name": "ticket", "description": "A ticket, classified"}}}}


def test_structured_output_answers_schema_json(client):
    response = client.converse(modelId=SONNET, messages=[user(PROMPT)],
                               outputConfig=output_config(TICKET_SCHEMA))
    assert_ticket(json.loads(response["output"]["message"]["content"][0]["text"]))
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.converse(modelId=NOVA, messages=[user(PROMPT)],
                        outputConfig=output_config(TICKET_SCHEMA))
    code, message, _ = error_of(excinfo)
    assert code == "ValidationException" and "outputConfig.textFormat" in message


def test_structured_output_violation_rate(start_server):
    server = start_server("--schema-violation-rate", "1")
    client = make_client(server.url)
    response = client.converse(modelId=SONNET, messages=[user(PROMPT)],
                               outputConfig=output_config(TICKET_SCHEMA))
    data = json.loads(response["output"]["message"]["content"][0]["text"])
    assert "category" not in data, "the first required field is dropped"


def test_count_tokens_equals_converse_usage(client):
    messages = [user(PROMPT)]
    system = [{"text": SYSTEM}]
    usage = client.converse(modelId=SONNET, messages=messages, system=system)["usage"]
    counted = client.count_tokens(
        modelId=SONNET, input={"converse": {"messages": messages, "system": system}}
    )["inputTokens"]
    assert counted == usage["inputTokens"] == tokens(SYSTEM) + tokens(PROMPT)


def test_count_tokens_of_an_invoke_model_body(client):
    body = json.dumps(anthropic_body(PROMPT, max_tokens=50))
    _, headers = invoke_json(client, SONNET, json.loads(body))
    counted = client.count_tokens(
        modelId=SONNET, input={"invokeModel": {"body": body.encode()}}
    )["inputTokens"]
    assert counted == int(headers["x-amzn-bedrock-input-token-count"])


def test_count_tokens_unsupported_model(client):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.count_tokens(modelId=HAIKU, input={"converse": {"messages": [user(PROMPT)]}})
    assert error_of(excinfo) == (
        "ValidationException", "The provided model doesn't support counting tokens.", 400)


# --------------------------------------------------------------------------------------
# Refusals from AWS's service models: the same text through boto3 as through the Rust SDK
# (tests/service_models.rs reads the same file)
# --------------------------------------------------------------------------------------

MODEL_ERRORS = json.loads((Path(__file__).parent / "model_errors.json").read_text())


def test_model_driven_validation_errors_read_as_through_the_rust_sdk(url):
    # botocore checks ranges itself; switched off, the request reaches the server as a
    # hand-written client would send it.
    config = botocore.config.Config(
        parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    common = dict(
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )
    runtime = boto3.client("bedrock-runtime", **common)
    bedrock = boto3.client("bedrock", **common)
    agent = boto3.client("bedrock-agent-runtime", **common)
    calls = {
        "converse_max_tokens_zero": lambda: runtime.converse(
            modelId=HAIKU, messages=[user(PROMPT)], inferenceConfig={"maxTokens": 0}
        ),
        "create_job_bad_name": lambda: bedrock.create_model_invocation_job(
            jobName="bad name",
            roleArn=BATCH_ROLE,
            modelId=HAIKU,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://interop-batch/in/"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://interop-batch/out/"}},
        ),
        "list_jobs_unknown_status": lambda: bedrock.list_model_invocation_jobs(statusEquals="Done"),
        "retrieve_too_many_results": lambda: agent.retrieve(
            knowledgeBaseId="ABCDEFGHIJ",
            retrievalQuery={"text": "x"},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 101}},
        ),
    }
    assert set(calls) == set(MODEL_ERRORS)
    for name, call in calls.items():
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            call()
        assert error_of(excinfo) == ("ValidationException", MODEL_ERRORS[name], 400), name
