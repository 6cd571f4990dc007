"""The console's JSON endpoints against the real daemon without a browser (these run
where Chromium is missing too): feed resume, explain, features, policy apply."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.server.conftest import ALERT_RULE, AUTH, policy_text
from tests.integration.ui.test_console import score, stream_ids

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_resuming_from_a_last_event_id_sends_exactly_what_followed(console_daemon):
    console_daemon.set_policy(policy_text("alerting", ALERT_RULE))
    score(console_daemon, "Something to alert on.")
    ids = stream_ids(console_daemon)
    assert len(ids) >= 2
    got: list[str] = []
    with httpx.stream("GET", f"{console_daemon.base}/ui/api/alerts/stream", timeout=30,
                      headers={**AUTH, "Last-Event-ID": ids[-2]}) as r:
        for line in r.iter_lines():
            if line.startswith("id: "):
                got.append(line[4:])
            if got and got[-1] == ids[-1]:
                break
    assert got == [ids[-1]]


def test_explain_names_the_features_behind_each_probe(console_daemon):
    messages = [{"role": "user", "content": "Write a Python function that deletes every file."}]
    r = httpx.post(f"{console_daemon.base}/ui/api/explain", headers=AUTH, timeout=60,
                   json={"messages": messages, "tokens": ["Here", " is", " a", " function"]})
    assert r.status_code == 200, r.text
    body = r.json()
    probes = set(console_daemon.runtime.backend.guard.probes.names)
    assert set(body["scores"]) == probes and set(body["probes"]) == probes
    assert body["token"] == " function" and body["exact_tokens"]
    assert body["position"] == body["prompt_tokens"] + 3
    feats = [f for fs in body["probes"].values() for f in fs]
    assert feats and all(f["contribution"] > 0 and f["activation"] > 0 for f in feats)
    assert any(f["label"] for f in body["top_features"])
    # the explanation is the daemon's own scoring of that position (same probe scores)
    chat = httpx.post(f"{console_daemon.base}/v1/score", headers=AUTH, timeout=60, json={
        "messages": [*messages, {"role": "assistant", "content": "Here is a function"}]}).json()
    last = [t for t in chat["tokens"] if t["token"] == " function"][-1]
    assert last["position"] == body["position"]
    for name in probes:
        assert abs(last["scores"][name] - body["scores"][name]) < 2e-3


def test_unknown_feature_and_probe_file_are_404(console_daemon):
    d_sae = int(console_daemon.runtime.backend.guard.W_dec.shape[0])
    r = httpx.get(f"{console_daemon.base}/ui/api/features/{d_sae}", headers=AUTH, timeout=30)
    assert r.status_code == 404 and f"0..{d_sae - 1}" in r.json()["error"]["message"]
    for name in ("..%2F..%2Fmanifest.json", "REPORT.md", "roc_x.png"):
        assert httpx.get(f"{console_daemon.base}/ui/api/probes/files/{name}", headers=AUTH,
                         timeout=10).status_code == 404


def test_apply_needs_the_token_and_writes_only_a_valid_policy(console_daemon):
    serving = console_daemon.set_policy(policy_text("alerting", ALERT_RULE))
    path = console_daemon.policy_path
    before = path.read_text()
    url = f"{console_daemon.base}/ui/api/policy/apply"
    assert httpx.post(url, json={"text": before}, timeout=10).status_code == 401
    r = httpx.post(url, headers=AUTH, json={"text": before.replace("mode: enforce", "mode: loud")}, timeout=30)
    assert r.status_code == 422
    assert r.json()["issues"][0]["text"].startswith(f"{path}:2: mode: ")
    assert path.read_text() == before and console_daemon.runtime.store.current.version == serving
    r = httpx.post(url, headers=AUTH, json={"text": before.replace("mode: enforce", "mode: shadow")}, timeout=30)
    assert r.status_code == 200 and r.json()["changed"]
    assert console_daemon.runtime.store.current.mode == "shadow"
    history = httpx.get(f"{console_daemon.base}/ui/api/policy", headers=AUTH, timeout=10).json()["history"]
    assert history[0]["outcome"] == "changed" and history[0]["version"] == console_daemon.runtime.store.current.version
