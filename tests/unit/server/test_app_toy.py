"""The HTTP app on a toy model (d_model 8) with a toy SAE/probe bank, in-process over ASGI:
SSE shape and scores, stop, auth, bad input. Fast: no real model, no Redis (a fake
alert writer; the real-Redis path is in tests/integration/server)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from monitor.alerts.redis_stream import SendResult
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from monitor.engine import Engine
from monitor.guard import Guard, ProbeBank
from monitor.policy.packinfo import StaticPackInfo
from monitor.server.app import create_app
from monitor.server.jobs import Backend
from monitor.server.metrics import Metrics, counting_publisher
from monitor.server.runtime import Gate, ObservedPolicyStore, Runtime
from monitor.server.settings import load_settings
from monitor.server.worker import SingleWorker
from tests.toymodel import ToyTokenizer, toy_model, toy_sae

HOOK = "blocks.1.hook_resid_post"
D_SAE = 16
TOKEN = "tok"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PACK = StaticPackInfo.build(D_SAE, {"hot": {"concept": "deception", "thresholds": {"0.01": 0.5}, "top_features": [3, 4]},
                                     "cold": {"concept": "bias", "thresholds": {"0.01": 0.5}, "top_features": [5]}})
ALERT = """name: toy
mode: enforce
on_monitor_error: fail_open
rules:
  - id: hot-alert
    when: {probe: hot, threshold: 0.9, scope: response}
    then:
      - alert: {severity: high}
"""
STOP = ALERT.replace("- alert: {severity: high}", "- stop: {message: \"[halted]\"}")


class FakeWriter:
    def __init__(self):
        self.sent = []

    def send(self, alerts):
        self.sent.extend(alerts)
        return SendResult(len(alerts), 0)

    def ping(self):
        return True


def toy_guard() -> Guard:
    import torch

    sae = toy_sae(d_sae=D_SAE)
    W = torch.zeros(D_SAE, 2)
    bank = ProbeBank(names=("hot", "cold"), concepts=("deception", "bias"), W=W, b=torch.tensor([20.0, -20.0]),
                     labels={})
    return Guard(sae, bank, HOOK, ToyTokenizer(), model_spec="toy")


@pytest.fixture
def app_env(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(ALERT)
    settings = load_settings(None, policy=policy, pack_dir=tmp_path, model_id="toy", auth_token=TOKEN,
                             watch_policy=False, spool_dir=tmp_path / "spool", max_tokens_cap=16)
    metrics = Metrics()
    writer = FakeWriter()
    sink = AlertSink(writer, Spool(tmp_path / "spool"))
    publish = counting_publisher(sink.publish, metrics)
    store = ObservedPolicyStore(policy, PACK, on_alert=publish)
    store.metrics = metrics
    store.load()
    engine = Engine(toy_model(), ToyTokenizer(), stop_token_ids=(0,))
    runtime = Runtime(settings=settings, lm=SimpleNamespace(model=engine.model, spec="toy", weights_sha256=""),
                      backend=Backend(engine=engine, guard=toy_guard(), metrics=metrics, publish=publish),
                      store=store, sink=sink, scheduler=SingleWorker(), metrics=metrics, gate=Gate())
    runtime.start()
    yield create_app(runtime), runtime, writer
    runtime.close()


def call(app, method, path, **kw):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://toy") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())


def body(**kw):
    return {"model": "toy", "messages": [{"role": "user", "content": "abc"}], "max_tokens": 5, "temperature": 0, **kw}


def test_sse_stream_has_openai_chunks_scores_alerts_and_done(app_env):
    app, runtime, writer = app_env
    r = call(app, "POST", "/v1/chat/completions", json=body(stream=True), headers=AUTH)
    assert r.status_code == 200 and r.headers["x-saeguard-policy-version"] == runtime.store.current.version
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["saeguard"]["scope"] == "prompt"
    toks = [c for c in chunks[1:] if c["saeguard"]["tokens"]]
    assert toks and all(set(c["saeguard"]["tokens"][0]["scores"]) == {"hot", "cold"} for c in toks)
    alerts = [a for c in chunks for a in c["saeguard"]["alerts"]]
    assert [a["rule_id"] for a in alerts] == ["hot-alert"] and alerts[0]["token_index"] == 0
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    assert runtime.sink.flush(5) and [a.rule_id for a in writer.sent] == ["hot-alert"]


def test_policy_stop_is_content_filter_with_message(app_env):
    app, runtime, _ = app_env
    runtime.store.path.write_text(STOP)
    assert call(app, "POST", "/v1/policy/reload", headers=AUTH).json()["changed"] is True
    r = call(app, "POST", "/v1/chat/completions", json=body(), headers=AUTH)
    choice = r.json()["choices"][0]
    # the rule fires on the first response token's residual: that token is already chosen
    # (it is emitted), the stop takes effect before the next one
    assert r.json()["usage"]["completion_tokens"] == 1
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"].endswith("[halted]")
    assert len(choice["message"]["content"]) == 1 + len("[halted]")


END = """name: toy
mode: enforce
on_monitor_error: fail_open
rules:
  - id: hot-at-end
    when: {probe: hot, threshold: 0.9, window: {tokens: 4096, reduce: mean}, at: response_end}
    then:
      - alert: {severity: medium}
"""


@pytest.mark.parametrize("stream", [True, False])
def test_an_end_of_response_verdict_arrives_with_the_final_chunk_and_reaches_the_stream(app_env, stream):
    app, runtime, writer = app_env
    runtime.store.path.write_text(END)
    assert call(app, "POST", "/v1/policy/reload", headers=AUTH).json()["changed"] is True
    r = call(app, "POST", "/v1/chat/completions", json=body(stream=stream), headers=AUTH)
    if stream:
        chunks = [json.loads(e[6:]) for e in r.text.split("\n\n") if e and e != "data: [DONE]"]
        where = [i for i, c in enumerate(chunks) for a in c["saeguard"]["alerts"]]
        assert where == [len(chunks) - 1] and chunks[-1]["choices"][0]["finish_reason"]
        alert = chunks[-1]["saeguard"]["alerts"][0]
        n = sum(1 for c in chunks if c["choices"][0]["delta"].get("content"))
    else:
        alerts = r.json()["saeguard"]["alerts"]
        assert len(alerts) == 1
        alert, n = alerts[0], r.json()["usage"]["completion_tokens"]
    assert alert["rule_id"] == "hot-at-end" and alert["token_index"] == n - 1
    assert runtime.sink.flush(5) and [a.rule_id for a in writer.sent] == ["hot-at-end"]


def test_an_end_of_response_verdict_on_a_scored_transcript(app_env):
    app, runtime, _ = app_env
    runtime.store.path.write_text(END)
    call(app, "POST", "/v1/policy/reload", headers=AUTH)
    msgs = [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "def"}]
    r = call(app, "POST", "/v1/score", json={"model": "toy", "messages": msgs}, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [a["rule_id"] for a in out["alerts"]] == ["hot-at-end"]
    assert out["rules_fired"] == [{"rule_id": "hot-at-end", "positions": 1}]
    last = [t for t in out["tokens"] if t["scope"] == "response"][-1]
    assert out["alerts"][0]["token_index"] == last["token_index"]


@pytest.mark.parametrize("payload,headers,status,needle", [
    (body(), {}, 401, "Authorization"),
    (body(), {"Authorization": "Basic x"}, 401, "Bearer"),
    (body(model="other"), AUTH, 404, "not served"),
    (body(temperature=-1), AUTH, 422, "temperature"),
    (body(max_tokens=17), AUTH, 422, "at most 16"),
    (body(messages=[{"role": "user", "content": "a" * 80}]), AUTH, 413, "context"),
    (body(messages=[{"role": "tool", "content": "x"}]), AUTH, 422, "role"),
])
def test_bad_requests(app_env, payload, headers, status, needle):
    app, _, _ = app_env
    r = call(app, "POST", "/v1/chat/completions", json=payload, headers=headers)
    assert r.status_code == status and needle.lower() in r.json()["error"]["message"].lower()


def test_reload_needs_a_configured_token(app_env):
    app, runtime, _ = app_env
    runtime.settings = runtime.settings.model_copy(update={"auth_token": ""})
    r = call(app, "POST", "/v1/policy/reload")
    assert r.status_code == 401 and "SIGHUP" in r.json()["error"]["message"]
    assert call(app, "GET", "/v1/policy").status_code == 200  # no token configured: open on loopback


def test_draining_refuses_new_requests_with_503(app_env):
    app, runtime, _ = app_env
    runtime.gate.draining = True
    r = call(app, "POST", "/v1/chat/completions", json=body(), headers=AUTH)
    assert r.status_code == 503 and "shutting down" in r.json()["error"]["message"]
    ready = call(app, "GET", "/readyz")
    assert ready.status_code == 503 and ready.json()["worker"]["draining"] is True
