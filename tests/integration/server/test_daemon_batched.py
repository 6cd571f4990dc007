"""Concurrent streams through the daemon are decoded in one batch (continuous batching)
and each client gets exactly what it gets alone; each stream keeps the policy snapshot it
started with, even when a concurrent request's policy clamps or stops."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.server.conftest import AUTH, CLAMP_RULE, policy_text

pytestmark = [pytest.mark.slow, pytest.mark.redis]

QUESTIONS = ["What is the capital of France?", "Name three colours of the rainbow.",
             "Give me one tip for sleeping better.", "Write one sentence about the sea."]


def stream_text(base: str, question: str, max_tokens: int = 12) -> dict:
    body = {"model": "default", "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True}
    text, versions, finish = [], set(), None
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as r:
        assert r.status_code == 200, r.read()
        header_version = r.headers["x-saeguard-policy-version"]
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        chunk = json.loads(line[6:])
        versions.add(chunk["saeguard"]["policy_version"])
        ch = chunk["choices"][0]
        text.append(ch["delta"].get("content") or "")
        finish = ch["finish_reason"] or finish
    return {"text": "".join(text), "finish": finish, "versions": versions, "header": header_version}


def test_concurrent_streams_share_the_batch_and_match_sequential_output(daemon):
    ready = httpx.get(f"{daemon.base}/readyz", timeout=5).json()
    assert ready["worker"]["scheduler"] == "BatchWorker"
    daemon.set_policy(policy_text("empty"))
    alone = [stream_text(daemon.base, q) for q in QUESTIONS]

    sizes: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            sizes.append(daemon.runtime.scheduler.active)
            done.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            together = list(pool.map(lambda q: stream_text(daemon.base, q), QUESTIONS))
    finally:
        done.set()
        watcher.join()
    assert [r["text"] for r in together] == [r["text"] for r in alone]
    assert all(r["finish"] in ("length", "stop") for r in together)
    assert max(sizes) >= 2, "the streams were never decoded together"


def test_each_stream_keeps_its_policy_snapshot_while_the_policy_changes(daemon):
    daemon.set_policy(policy_text("empty"))
    q = QUESTIONS[3]
    plain = stream_text(daemon.base, q, max_tokens=16)
    results: dict[str, dict] = {}

    def run(name: str) -> None:
        results[name] = stream_text(daemon.base, q, max_tokens=16)

    first = threading.Thread(target=run, args=("empty",))
    first.start()
    clamp_version = daemon.set_policy(policy_text("clamp", CLAMP_RULE))  # while "empty" may be decoding
    second = threading.Thread(target=run, args=("clamp",))
    second.start()
    first.join()
    second.join()
    for r in results.values():
        assert r["versions"] == {r["header"]}  # every chunk carries the version it started with
    assert results["clamp"]["header"] == clamp_version
    assert results["clamp"]["text"] != plain["text"]  # the clamp changed that response ...
    if results["empty"]["header"] != clamp_version:  # ... and not the one that started before it
        assert results["empty"]["text"] == plain["text"]


PROMPT_CLAMP_RULE = """\
  - id: clamp-from-the-prompt
    when: {probe: deception, threshold: 0.0, scope: prompt}
    then:
      - clamp: {top_k: 4, value: 300.0, tokens: rest}
"""


def test_a_long_prompt_joining_a_stream_is_prefilled_in_chunks_with_the_guard_and_both_match_alone(daemon):
    """A ~700-token prompt joins while another stream decodes: it is prefilled in chunks (the
    guard clamping from its first prompt position on, across the chunks) and both clients
    get exactly what they get alone."""
    daemon.set_policy(policy_text("prompt-clamp", PROMPT_CLAMP_RULE))
    long_q = " ".join(f"Fact {i}: the {['red', 'blue', 'green'][i % 3]} jar has {i * 7 % 13} beads." for i in range(60))
    long_q += " Which jar has the most beads?"
    short_q = "Write a long story about a lighthouse keeper and a storm."
    alone_short = stream_text(daemon.base, short_q, max_tokens=64)
    assert alone_short["finish"] == "length"  # it is still decoding when the long prompt joins
    alone_long = stream_text(daemon.base, long_q, max_tokens=8)
    pending_seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            dec = daemon.runtime.scheduler._decoder
            pending_seen.append(len(dec.pending) if dec is not None else 0)
            done.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            short = pool.submit(stream_text, daemon.base, short_q, 64)
            threading.Event().wait(0.5)  # the short stream is decoding by now
            long = pool.submit(stream_text, daemon.base, long_q, 8)
            together = [short.result(), long.result()]
    finally:
        done.set()
        watcher.join()
    assert max(pending_seen) == 1, "the long prompt was never prefilled in chunks"
    assert [r["text"] for r in together] == [alone_short["text"], alone_long["text"]]
