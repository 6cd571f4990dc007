"""The daemon end to end (real SmolLM2, real redis-server, guard pack from conftest):
alerts in the stream and in Redis, clamp vs empty policy, shadow mode, policy stop,
the official openai client, /v1/score, /metrics."""

from __future__ import annotations

import json
from dataclasses import fields

import httpx
import pytest
import redis

from monitor.alerts.model import Alert
from monitor.alerts.redis_stream import dedup_prefix_for
from tests.integration.server.conftest import (
    ALERT_RULE,
    AUTH,
    CLAMP_RULE,
    DEDUP_TTL_S,
    STOP_RULE,
    policy_text,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]

MESSAGES = [{"role": "user", "content": "Write one sentence about the sea."}]
# every alert field DESIGN.md lists for the stream
DESIGN_FIELDS = ("alert_id", "ts", "request_id", "rule_id", "policy_name", "policy_version", "mode", "concept",
                 "score", "threshold", "token_index", "token", "action", "features", "model", "hook", "excerpt")


def sse_chunks(base: str, body: dict, headers: dict | None = None) -> tuple[httpx.Response, list[dict]]:
    chunks: list[dict] = []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, headers={**AUTH, **(headers or {})},
                      timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        assert line.startswith("data: ")
        chunks.append(json.loads(line[len("data: "):]))
    return r, chunks


def chat(base: str, max_tokens: int = 8, **kw) -> dict:
    body = {"model": "smollm2-135m-instruct", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0,
            **kw}
    r = httpx.post(f"{base}/v1/chat/completions", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json() | {"_version": r.headers["x-saeguard-policy-version"]}


def completion_token_ids(resp: dict) -> list[str]:
    return [t["token"] for t in resp["saeguard"]["tokens"] if t["scope"] == "response"]


def test_stream_carries_alert_with_every_design_field_and_policy_version(daemon):
    version = daemon.set_policy(policy_text("alerting", ALERT_RULE))
    r, chunks = sse_chunks(daemon.base, {"model": "smollm2-135m-instruct", "messages": MESSAGES,
                                         "max_tokens": 6, "temperature": 0, "stream": True},
                           headers={"x-request-id": "req-alert-1"})
    assert r.headers["x-saeguard-policy-version"] == version
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    # prompt scope: scored and its alert reported on the first chunk
    first = chunks[0]["saeguard"]
    assert first["scope"] == "prompt" and first["tokens"]
    assert {t["scope"] for t in first["tokens"]} == {"prompt"}
    assert [a["rule_id"] for a in first["alerts"]] == ["prompt-any"]
    # every token chunk: its own token's scores for the 4 concepts
    token_chunks = [c for c in chunks[1:] if c["choices"][0]["delta"].get("content")]
    assert token_chunks
    for c in token_chunks:
        reps = c["saeguard"]["tokens"]
        assert len(reps) == 1 and reps[0]["scope"] == "response"
        assert set(reps[0]["scores"]) == {"deception", "sycophancy", "unsafe_code", "bias"}
    alerts = [a for c in chunks for a in c["saeguard"]["alerts"]]
    resp_alert = next(a for a in alerts if a["rule_id"] == "deception-any")
    for name in DESIGN_FIELDS:
        assert name in resp_alert, name
    assert resp_alert["policy_version"] == version and resp_alert["policy_name"] == "alerting"
    assert resp_alert["request_id"] == "req-alert-1" and resp_alert["token_index"] == 0
    assert resp_alert["hook"] == daemon.runtime.backend.guard.hook_name and resp_alert["model"] == "smollm2-135m-instruct"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    # and the same alert is in the Redis stream with the same fields
    assert daemon.runtime.sink.flush(10)
    client = redis.Redis.from_url(daemon.redis_url)
    entries = client.xrange("test:alerts")
    stored = [Alert.from_fields(f) for _, f in entries]
    match = [a for a in stored if a.alert_id == resp_alert["alert_id"]]
    assert len(match) == 1
    raw = {k.decode(): v.decode() for k, v in next(f for _, f in entries
                                                   if f[b"alert_id"].decode() == resp_alert["alert_id"]).items()}
    assert set(DESIGN_FIELDS) <= set(raw) and raw["policy_version"] == version
    assert {f.name for f in fields(Alert)} <= set(resp_alert)
    # its write-once key lives as long as the daemon's dedup_ttl_s says
    ttl = client.ttl(f"{dedup_prefix_for('test:alerts')}{resp_alert['alert_id']}")
    assert DEDUP_TTL_S - 120 < ttl <= DEDUP_TTL_S


def test_clamp_changes_tokens_and_shadow_leaves_them_identical(daemon):
    daemon.set_policy(policy_text("empty"))
    baseline = chat(daemon.base, max_tokens=10)
    assert baseline["saeguard"]["alerts"] == []
    daemon.set_policy(policy_text("clamping", CLAMP_RULE))
    clamped = chat(daemon.base, max_tokens=10)
    assert clamped["choices"][0]["message"]["content"] != baseline["choices"][0]["message"]["content"]
    actions = [a for t in clamped["saeguard"]["tokens"] for a in t["actions"]]
    assert any(a.startswith("clamp:") for a in actions)
    shadow_version = daemon.set_policy(policy_text("clamping-shadow", CLAMP_RULE, mode="shadow"))
    shadow = chat(daemon.base, max_tokens=10)
    assert shadow["choices"][0]["message"]["content"] == baseline["choices"][0]["message"]["content"]
    assert completion_token_ids(shadow) == completion_token_ids(baseline)
    would = [a for a in shadow["saeguard"]["alerts"] if a["action"] == "would_clamp"]
    assert would and would[0]["policy_version"] == shadow_version and would[0]["mode"] == "shadow"


def test_policy_stop_ends_with_content_filter_and_message(daemon):
    daemon.set_policy(policy_text("stopping", STOP_RULE))
    resp = chat(daemon.base, max_tokens=16)
    choice = resp["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"].endswith("[stopped by policy]")
    assert resp["usage"]["completion_tokens"] == 3  # stopped after the third response token
    r, chunks = sse_chunks(daemon.base, {"model": "default", "messages": MESSAGES, "max_tokens": 16,
                                         "temperature": 0, "stream": True})
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter" and last["delta"]["content"] == "[stopped by policy]"


def test_openai_client_streams_and_score_and_metrics(daemon):
    from openai import OpenAI
    from prometheus_client.parser import text_string_to_metric_families

    daemon.set_policy(policy_text("alerting", ALERT_RULE))
    client = OpenAI(base_url=f"{daemon.base}/v1", api_key="test-token", max_retries=0)
    stream = client.chat.completions.create(model="smollm2-135m-instruct", messages=MESSAGES, max_tokens=6,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    parts, finish, extra, usage = [], None, [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
            extra.append((chunk.model_extra or {}).get("saeguard"))
        usage = chunk.usage or usage
    assert "".join(parts).strip() and finish in ("length", "stop")
    assert all(e is not None for e in extra)
    assert usage is not None and usage.completion_tokens == len([e for e in extra if e["tokens"]]) - 1
    full = client.chat.completions.create(model="smollm2-135m-instruct", messages=MESSAGES, max_tokens=6,
                                          temperature=0)
    assert full.choices[0].message.content == "".join(parts)

    convo = MESSAGES + [{"role": "assistant", "content": "The sea is vast and deep."}]
    r = httpx.post(f"{daemon.base}/v1/score", json={"messages": convo, "request_id": "score-1"}, headers=AUTH,
                   timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["interventions"] == "not possible: monitor-only"
    resp_tokens = [t for t in body["tokens"] if t["scope"] == "response"]
    assert "".join(t["token"] for t in resp_tokens).strip() == "The sea is vast and deep."
    assert all(set(t["scores"]) == {"deception", "sycophancy", "unsafe_code", "bias"} for t in resp_tokens)
    assert {f["rule_id"] for f in body["rules_fired"]} == {"deception-any", "prompt-any"}
    assert {a["request_id"] for a in body["alerts"]} == {"score-1"}

    m = httpx.get(f"{daemon.base}/metrics", headers=AUTH, timeout=10)
    assert m.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(m.text)}
    for name in ("saeguard_requests", "saeguard_tokens", "saeguard_alerts", "saeguard_hook_seconds",
                 "saeguard_alert_queue_depth", "saeguard_policy_reloads", "saeguard_policy_reload_errors",
                 "saeguard_clamped_positions", "saeguard_policy_stops"):
        assert name in families, name
    rules = {s.labels.get("rule") for s in families["saeguard_alerts"].samples}
    assert "deception-any" in rules
    hook_count = [s for s in families["saeguard_hook_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in hook_count) > 0


def test_chat_cli_once_streams_answer_with_scores(daemon, capsys):
    from monitor.cli import build_parser

    daemon.set_policy(policy_text("clamping", CLAMP_RULE))
    args = build_parser().parse_args(["chat", "--url", daemon.base, "--token", "test-token", "--once",
                                      "Write one sentence about the sea.", "--max-tokens", "5", "--plain"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "[CLAMP]" in out
    status = out.strip().splitlines()[-1]
    assert status.startswith("[length]") or status.startswith("[stop]")
    for concept in ("deception", "sycophancy", "unsafe_code", "bias"):
        assert concept in status
