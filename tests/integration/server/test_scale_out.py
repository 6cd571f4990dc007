"""Scale-out: two ``saeguard serve`` replicas (separate processes, each its own port and
spool) on one Redis with the same stream key. Alerts from both land in the one stream;
a consumer group with two consumers hands each alert to exactly one of them; and every
key the replicas create hashes to one Redis Cluster slot, so the same setup works
unchanged on Redis Cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from redis.crc import key_slot

from monitor.alerts.subscriber import GroupSubscriber
from tests.integration.server.conftest import ALERT_RULE, policy_text
from tests.redis_server import free_port
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[3]
STREAM = "scale:alerts"
TOKEN = "scale-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# ALERT_RULE fires once in the prompt and once in the response; these add one alert at
# each of the first three response tokens, so alerts trickle in during generation.
MORE_RULES = "".join(
    f"  - id: tok-{k}\n"
    f"    when: {{probe: deception, threshold: 0.0, scope: response, min_consecutive: {k}}}\n"
    f"    then: [{{alert: {{severity: info}}}}]\n"
    for k in (1, 2, 3)
)


def start_replica(pack: Path, redis_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """One replica as production runs it: its own process, port and spool directory."""
    workdir.mkdir(parents=True)
    policy = workdir / "policy.yaml"
    policy.write_text(policy_text("scale", ALERT_RULE + MORE_RULES))
    port = free_port()
    cmd = [sys.executable, "-m", "monitor", "serve", "--port", str(port), "--pack", str(pack),
           "--policy", str(policy), "--redis", redis_url, "--stream", STREAM,
           "--spool-dir", str(workdir / "spool"), "--threads", "1", "--no-watch"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAEGUARD_AUTH_TOKEN": TOKEN}
    log = open(workdir / "daemon.log", "wb")  # noqa: SIM115  (closed with the process)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"replica exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"replica not ready:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.3)


class Consumer(threading.Thread):
    """One member of the consumer group: XREADGROUP one entry at a time, handle, XACK."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(name=f"consumer-{name}", daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self.sub = GroupSubscriber(self.client, STREAM, "scale-test", name, count=1)
        self.got: list[str] = []
        self.stop = threading.Event()
        self.polling = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            batch = self.sub.read_new(block_ms=100)
            self.polling.set()
            for delivery in batch:
                self.got.append(delivery.fields["alert_id"])
                time.sleep(0.005)  # "handling" the alert: the other consumer takes the next one
                self.sub.ack(delivery.entry_id)


def chat(base: str, i: int) -> list[str]:
    """A chat request (streaming or not); the alert ids the client saw."""
    body = {"model": "default", "max_tokens": 4, "temperature": 0, "stream": i % 2 == 1,
            "messages": [{"role": "user", "content": f"Name a colour. ({i})"}]}
    if not body["stream"]:
        r = httpx.post(f"{base}/v1/chat/completions", json=body, headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text
        return [a["alert_id"] for a in r.json()["saeguard"]["alerts"]]
    import json

    ids: list[str] = []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                ids += [a["alert_id"] for a in (json.loads(line[6:]).get("saeguard") or {}).get("alerts", [])]
    return ids


def test_two_replicas_one_stream_consumer_group_exactly_once_one_cluster_slot(guard_pack, redis_factory,
                                                                               tmp_path):
    server = redis_factory()
    r = redis.Redis.from_url(server.url, decode_responses=True)
    replicas = [start_replica(guard_pack, server.url, tmp_path / f"replica-{n}") for n in (1, 2)]
    consumers: list[Consumer] = []
    try:
        for n, (proc, base) in enumerate(replicas, start=1):
            wait_ready(proc, base, tmp_path / f"replica-{n}" / "daemon.log")
        GroupSubscriber(r, STREAM, "scale-test", "setup").ensure_group("$")
        consumers = [Consumer(server.url, name) for name in ("c1", "c2")]
        for c in consumers:
            c.start()
        assert all(c.polling.wait(10) for c in consumers)

        # requests to both replicas at once, as a load balancer would spread them
        jobs = [(replicas[i % 2][1], i) for i in range(8)]
        with ThreadPoolExecutor(4) as pool:
            per_request = list(pool.map(lambda job: chat(*job), jobs))
        by_replica = {base: set() for _proc, base in replicas}
        for (base, _i), ids in zip(jobs, per_request, strict=True):
            by_replica[base].update(ids)
        client_ids = set().union(*per_request)
        assert all(len(ids) >= 3 for ids in by_replica.values()), "both replicas raised alerts"
        assert len(client_ids) == sum(len(ids) for ids in per_request), "alert ids are unique across replicas"

        # every alert the clients saw is in the ONE stream, once
        assert _eventually(lambda: r.xlen(STREAM) >= len(client_ids))
        in_stream = [fields["alert_id"] for _id, fields in r.xrange(STREAM)]
        assert sorted(in_stream) == sorted(client_ids)

        # the group delivered each alert exactly once across its two consumers, all acked
        assert _eventually(lambda: sum(len(c.got) for c in consumers) >= len(client_ids))
        time.sleep(0.3)  # a duplicate delivery would show up now
        deliveries = Counter(a for c in consumers for a in c.got)
        assert set(deliveries) == client_ids
        assert max(deliveries.values()) == 1, [a for a, n in deliveries.items() if n > 1]
        assert all(c.got for c in consumers), "both consumers shared the work"
        assert r.xpending(STREAM, "scale-test")["pending"] == 0

        # Redis Cluster: one stream key; every other key the replicas wrote is a
        # de-duplication key in the stream's hash slot (the Lua script's keys share it)
        keys = set(r.scan_iter(count=1000))
        assert STREAM in keys and r.type(STREAM) == "stream"
        assert keys - {STREAM} == {k for k in keys if k.startswith("{scale:alerts}:seen:")}
        assert len(keys) == 1 + len(client_ids)
        assert {key_slot(k.encode()) for k in keys} == {key_slot(STREAM.encode())}
    finally:
        for c in consumers:
            c.stop.set()
        for proc, _base in replicas:
            proc.terminate()
        for proc, _base in replicas:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for c in consumers:
            c.join(5)
    assert [proc.returncode for proc, _base in replicas] == [0, 0]


def _eventually(pred, timeout: float = 30.0) -> bool:
    return eventually(pred, timeout)
