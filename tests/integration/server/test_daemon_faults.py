"""Faults: Redis down (fail_closed refuses with 503, fail_open keeps serving and spools,
nothing lost when Redis returns) and a broken monitor (fail_open continues unmonitored
with the error in the stream and an alert; fail_closed ends the request with an error)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from monitor.alerts.model import Alert
from tests.integration.server.conftest import ALERT_RULE, AUTH, Daemon, policy_text, start_daemon
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.redis]

M = "smollm2-135m-instruct"
BODY = {"model": M, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    from tests.redis_server import RedisServer, redis_available

    if not redis_available():
        pytest.skip("needs /usr/bin/redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis-faults")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fdaemon(loaded_model, guard_pack, private_redis, tmp_path_factory) -> Iterator[Daemon]:
    with start_daemon(loaded_model, guard_pack, private_redis.url, tmp_path_factory.mktemp("fdaemon")) as d:
        yield d


def wait_for(pred, timeout: float = 15.0) -> bool:
    return eventually(pred, timeout)


def post(d: Daemon, **kw) -> httpx.Response:
    return httpx.post(f"{d.base}/v1/chat/completions", json={**BODY, **kw}, headers=AUTH, timeout=60)


def test_redis_down_fail_closed_refuses_fail_open_spools_and_nothing_is_lost(fdaemon, private_redis):
    d = fdaemon
    published: set[str] = set()
    d.set_policy(policy_text("closed", ALERT_RULE, on_error="fail_closed"))
    r = post(d)
    assert r.status_code == 200
    published |= {a["alert_id"] for a in r.json()["saeguard"]["alerts"]}
    private_redis.kill()
    # the next alerts cannot be delivered: the sink notices and spools
    r = post(d)
    assert r.status_code in (200, 503)
    if r.status_code == 200:
        published |= {a["alert_id"] for a in r.json()["saeguard"]["alerts"]}
    assert wait_for(lambda: d.runtime.sink.state().spooling)
    r = post(d)
    assert r.status_code == 503
    msg = r.json()["error"]["message"]
    assert "Redis" in msg and "fail_closed" in msg
    ready = httpx.get(f"{d.base}/readyz", timeout=10)
    assert ready.status_code == 503 and "fail_closed" in ready.json()["reason"]
    assert ready.json()["alerts"]["spooling"] is True
    # fail_open: keeps serving while alerts spool
    d.set_policy(policy_text("open", ALERT_RULE, on_error="fail_open"))
    r = post(d)
    assert r.status_code == 200
    published |= {a["alert_id"] for a in r.json()["saeguard"]["alerts"]}
    private_redis.start()
    assert d.runtime.sink.flush(20)
    with private_redis.client() as c:
        stored = [Alert.from_fields(f) for _, f in c.xrange("test:alerts")]
    ids = [a.alert_id for a in stored if a.kind == "rule"]
    assert published <= set(ids) and len(ids) == len(set(ids))


def test_idle_daemon_notices_redis_gone_and_back_before_any_request_fail_closed(fdaemon, private_redis):
    """No traffic while Redis dies: the sink's heartbeat still notices, so the first
    request after the outage is refused (fail_closed) instead of served and spooled."""
    d = fdaemon
    d.set_policy(policy_text("closed-idle", ALERT_RULE, on_error="fail_closed"))
    private_redis.start()
    assert d.runtime.sink.flush(20)
    assert wait_for(lambda: httpx.get(f"{d.base}/readyz", timeout=10).status_code == 200)
    private_redis.kill()
    assert wait_for(lambda: httpx.get(f"{d.base}/readyz", timeout=10).status_code == 503, 5)
    r = post(d)
    assert r.status_code == 503 and "Redis" in r.json()["error"]["message"]
    private_redis.start()
    assert wait_for(lambda: httpx.get(f"{d.base}/readyz", timeout=10).status_code == 200, 10)
    assert post(d).status_code == 200


class BrokenBank:
    """A probe bank whose scoring raises (a monitor fault)."""

    def __init__(self, real):
        self.real = real
        self.names = real.names

    def score(self, z, x=None):
        raise RuntimeError("probe bank exploded")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_monitor_error_fail_open_continues_and_fail_closed_ends_with_error(fdaemon, private_redis):
    d = fdaemon
    private_redis.start()
    guard = d.runtime.backend.guard
    real = guard.probes
    d.set_policy(policy_text("open", ALERT_RULE, on_error="fail_open"))
    reference = post(d, max_tokens=6).json()["choices"][0]["message"]["content"]
    guard.probes = BrokenBank(real)
    try:
        r = post(d, max_tokens=6)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == reference  # unmonitored, unchanged
        errors = body["saeguard"]["monitor_errors"]
        assert errors and "probe bank exploded" in errors[0]
        with httpx.stream("POST", f"{d.base}/v1/chat/completions", json={**BODY, "stream": True}, headers=AUTH,
                          timeout=60) as s:
            events = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: {")]
        assert events[-1]["saeguard"]["monitor_errors"]
        assert d.runtime.sink.flush(10)
        with private_redis.client() as c:
            kinds = [Alert.from_fields(f).action for _, f in c.xrange("test:alerts")]
        assert "monitor_error" in kinds

        d.set_policy(policy_text("closed", ALERT_RULE, on_error="fail_closed"))
        r = post(d)
        assert r.status_code == 503 and "fail_closed" in r.json()["error"]["message"]
        with httpx.stream("POST", f"{d.base}/v1/chat/completions", json={**BODY, "stream": True}, headers=AUTH,
                          timeout=60) as s:
            events = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: {")]
        assert "error" in events[-1] and "probe bank exploded" in events[-1]["error"]["message"]
    finally:
        guard.probes = real
    # the daemon is fine afterwards
    assert post(d).status_code == 200
