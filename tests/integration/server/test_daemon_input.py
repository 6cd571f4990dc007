"""Bad input and auth: each malformed request gets the right 4xx with a JSON error that
says what was wrong, the daemon stays up, and a valid request still succeeds. Also the
ops endpoints and concurrent requests keeping their own state."""

from __future__ import annotations

import concurrent.futures as cf

import httpx
import pytest

from tests.integration.server.conftest import AUTH, STOP_RULE, policy_text

pytestmark = [pytest.mark.slow, pytest.mark.redis]

M = "smollm2-135m-instruct"
OK_MSGS = [{"role": "user", "content": "Say hi."}]
LONG = " ".join(["banana"] * 2100)

# (name, body (dict, or raw str sent as JSON text), headers, expected status, substring of the message)
CASES = [
    ("malformed json", "{\"model\": \"x\", ", AUTH, 400, "not valid JSON"),
    ("body not an object", "[1, 2, 3]", AUTH, 400, "JSON object"),
    ("empty body", "", AUTH, 400, "JSON"),
    ("missing messages", {"model": M}, AUTH, 422, "messages"),
    ("missing model", {"messages": OK_MSGS}, AUTH, 422, "model"),
    ("empty messages", {"model": M, "messages": []}, AUTH, 422, "messages"),
    ("messages not a list", {"model": M, "messages": "hi"}, AUTH, 422, "messages"),
    ("bad role", {"model": M, "messages": [{"role": "wizard", "content": "x"}]}, AUTH, 422, "role"),
    ("content not text", {"model": M, "messages": [{"role": "user", "content": 5}]}, AUTH, 422, "content"),
    ("temperature too high", {"model": M, "messages": OK_MSGS, "temperature": 3}, AUTH, 422, "temperature"),
    ("top_p zero", {"model": M, "messages": OK_MSGS, "top_p": 0}, AUTH, 422, "top_p"),
    ("top_p above 1", {"model": M, "messages": OK_MSGS, "top_p": 1.5}, AUTH, 422, "top_p"),
    ("max_tokens zero", {"model": M, "messages": OK_MSGS, "max_tokens": 0}, AUTH, 422, "max_tokens"),
    ("max_tokens over cap", {"model": M, "messages": OK_MSGS, "max_tokens": 100000}, AUTH, 422, "at most 64"),
    ("n=2", {"model": M, "messages": OK_MSGS, "n": 2}, AUTH, 422, "n=1"),
    ("tools", {"model": M, "messages": OK_MSGS, "tools": [{"type": "function"}]}, AUTH, 422, "tools"),
    ("stream not bool", {"model": M, "messages": OK_MSGS, "stream": [1]}, AUTH, 422, "stream"),
    ("seed not int", {"model": M, "messages": OK_MSGS, "seed": "abc"}, AUTH, 422, "seed"),
    ("unknown model", {"model": "gpt-9", "messages": OK_MSGS}, AUTH, 404, "not served"),
    ("prompt too long", {"model": M, "messages": [{"role": "user", "content": LONG}]}, AUTH, 413, "tokens"),
    ("no token", {"model": M, "messages": OK_MSGS}, {}, 401, "Authorization"),
    ("wrong token", {"model": M, "messages": OK_MSGS}, {"Authorization": "Bearer nope"}, 401, "invalid"),
]


def test_malformed_requests_get_clear_4xx_then_valid_request_succeeds(daemon):
    daemon.set_policy(policy_text("empty"))
    with httpx.Client(base_url=daemon.base, timeout=60) as client:
        for name, body, headers, status, needle in CASES:
            if isinstance(body, str):
                r = client.post("/v1/chat/completions", content=body,
                                headers={**headers, "content-type": "application/json"})
            else:
                r = client.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == status, (name, r.status_code, r.text)
            err = r.json()["error"]
            assert needle.lower() in err["message"].lower(), (name, err)
            assert err["type"]
        # the same limits on /v1/score
        r = client.post("/v1/score", json={"messages": [{"role": "user", "content": LONG}]}, headers=AUTH)
        assert r.status_code == 413 and "tokens" in r.json()["error"]["message"]
        r = client.post("/v1/score", json={"messages": OK_MSGS, "bogus": 1}, headers=AUTH)
        assert r.status_code == 422 and "bogus" in r.json()["error"]["message"]
        r = client.post("/v1/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=AUTH)
        assert r.status_code == 413 and "bytes" in r.json()["error"]["message"]
        r = client.get("/v1/nope", headers=AUTH)
        assert r.status_code == 404 and r.json()["error"]["message"]
        assert client.get("/healthz").json() == {"status": "ok"}
        r = client.post("/v1/chat/completions", json={"model": M, "messages": OK_MSGS, "max_tokens": 4,
                                                      "temperature": 0}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        metrics = client.get("/metrics", headers=AUTH).text
        assert 'saeguard_requests_total{endpoint="/v1/chat/completions",status="422"}' in metrics
        assert 'status="500"' not in metrics


def test_ops_endpoints_and_reload_auth(daemon, tmp_path):
    version = daemon.set_policy(policy_text("alerting-ops", STOP_RULE))
    with httpx.Client(base_url=daemon.base, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        detail = ready.json()
        assert detail["ready"] and detail["policy"]["version"] == version
        assert detail["alerts"]["redis_connected"] is True and detail["model"]["id"] == M
        pol = client.get("/v1/policy", headers=AUTH).json()
        assert pol["name"] == "alerting-ops" and pol["version"] == version and pol["mode"] == "enforce"
        assert pol["rules"][0]["id"] == "stop-deception" and pol["rules"][0]["actions"] == ["stop"]
        assert client.get("/v1/policy").status_code == 401
        assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == M
        # reload always needs the token
        r = client.post("/v1/policy/reload")
        assert r.status_code == 401 and "Authorization" in r.json()["error"]["message"]
        # an invalid edit is rejected, the old policy keeps serving and /readyz says why
        daemon.policy_path.write_text("name: broken\nmode: enforce\nrules:\n  - id: x\n    when: {probe: nope}\n")
        r = client.post("/v1/policy/reload", headers=AUTH)
        assert r.status_code == 422 and r.json()["ok"] is False and r.json()["version"] == version
        assert r.json()["issues"]
        # ... and carries the error envelope every other error status has
        err = r.json()["error"]
        assert err["code"] == "invalid_policy" and version[:12] in err["message"]
        assert r.json()["issues"][0] in err["message"]
        ready = client.get("/readyz").json()
        assert ready["policy"]["version"] == version and ready["policy"]["last_reload_error"]["issues"]
        r = client.post("/v1/chat/completions", json={"model": M, "messages": OK_MSGS, "max_tokens": 4,
                                                      "temperature": 0}, headers=AUTH)
        assert r.headers["x-saeguard-policy-version"] == version


def test_concurrent_requests_keep_their_own_policy_state(daemon):
    """Two requests at once under a stop-after-3-tokens rule: each stops after its own 3rd
    token (windows/counters are per request), with the same tokens as when run alone."""
    daemon.set_policy(policy_text("stopping", STOP_RULE))
    prompts = ["Name a colour.", "Name an animal."]

    def ask(p: str) -> dict:
        r = httpx.post(f"{daemon.base}/v1/chat/completions", headers=AUTH, timeout=120,
                       json={"model": M, "messages": [{"role": "user", "content": p}], "max_tokens": 12,
                             "temperature": 0})
        assert r.status_code == 200, r.text
        return r.json()

    alone = [ask(p) for p in prompts]
    with cf.ThreadPoolExecutor(2) as pool:
        together = list(pool.map(ask, prompts))
    for a, b in zip(alone, together, strict=True):
        assert b["choices"][0]["finish_reason"] == "content_filter" and b["usage"]["completion_tokens"] == 3
        assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]


def _completion_tokens(base: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", headers=AUTH, timeout=10).text
    for fam in text_string_to_metric_families(text):
        if fam.name == "saeguard_tokens":
            return sum(s.value for s in fam.samples if s.labels.get("kind") == "completion"
                       and s.name.endswith("_total"))
    return 0.0


def test_client_disconnect_stops_its_generation(daemon):
    import time

    daemon.set_policy(policy_text("empty"))
    before = _completion_tokens(daemon.base)
    body = {"model": M, "messages": [{"role": "user", "content": "Count from one to one hundred."}],
            "max_tokens": 60, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{daemon.base}/v1/chat/completions", json=body, headers=AUTH, timeout=60) as r:
        got = 0
        for line in r.iter_lines():
            got += bool(line)
            if got == 3:
                break  # hang up mid-stream
    time.sleep(0.5)
    r = httpx.post(f"{daemon.base}/v1/chat/completions", headers=AUTH, timeout=60,
                   json={**body, "stream": False, "max_tokens": 2})
    assert r.status_code == 200
    spent = _completion_tokens(daemon.base) - before
    assert spent < 30, f"{spent} tokens generated: the abandoned stream kept running"
    assert daemon.runtime.gate.in_flight == 0
