"""Alert delivery against a real redis-server: kill -9 and restart while producing,
replays that do not duplicate, overflow, trimming, consumer groups and reclaiming the
entries of a dead consumer, the ``alerts tail`` CLI and the example subscriber."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monitor.alerts.model import Alert
from monitor.alerts.redis_stream import RedisStreamWriter, make_redis_client
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from monitor.alerts.subscriber import GroupSubscriber
from tests.unit.alerts.fakes import make_alert

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[3]
STREAM = "saeguard:alerts"


def stream_alerts(server, stream=STREAM) -> list[Alert]:
    with server.client() as c:
        return [Alert.from_fields(f) for _id, f in c.xrange(stream)]


def new_sink(server, spool_dir, **kw):
    writer = RedisStreamWriter(
        make_redis_client(server.url, timeout_s=0.5), STREAM, maxlen=1_000_000
    )
    opts = {"capacity": 1000, "batch_size": 64, "retry_min_s": 0.05, "retry_max_s": 0.3, **kw}
    sink = AlertSink(writer, Spool(spool_dir), **opts)
    sink.start()
    return sink, writer


def assert_exactly_once_in_order(alerts, requests, n):
    ids = [a.alert_id for a in alerts]
    assert len(ids) == len(set(ids)), "duplicate alert_id in the stream"
    assert set(ids) == {f"{r}-{i:06d}" for r in requests for i in range(n)}, "alerts missing"
    for r in requests:
        assert [a.token_index for a in alerts if a.request_id == r] == list(range(n)), (
            f"{r} out of order"
        )


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_redis_killed_and_restarted_while_producing(redis_factory, tmp_path):
    server = redis_factory()
    sink, _ = new_sink(server, tmp_path / "spool")
    requests, n = ["req-a", "req-b", "req-c"], 400
    outage_states = []

    def produce(request):
        for i in range(n):
            sink.publish(make_alert(i, request=request))
            time.sleep(0.003)

    producers = [threading.Thread(target=produce, args=(r,)) for r in requests]
    for t in producers:
        t.start()
    for _ in range(2):  # two outages: kill -9, alerts keep coming, restart (same port, same data)
        time.sleep(0.3)
        server.kill()
        assert wait_for(lambda: sink.state().spooling)
        time.sleep(0.4)
        outage_states.append(sink.state())
        server.start()
    for t in producers:
        t.join()
    assert sink.flush(30), sink.state()
    final = sink.state()
    assert all(s.spooling and not s.connected and s.spooled > 0 for s in outage_states)
    assert final.connected and final.spooled == 0 and final.queue_depth == 0
    alerts = stream_alerts(server)
    assert_exactly_once_in_order(alerts, requests, n)
    assert final.sent + final.duplicates >= len(alerts) == 3 * n
    assert sink.close(5)


def test_replay_after_crash_between_send_and_truncate_adds_nothing_twice(redis_server, tmp_path):
    alerts = [make_alert(i, request="r") for i in range(50)]
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    assert writer.send(alerts[:30]).added == 30  # reached Redis...
    spool = Spool(tmp_path / "spool")
    spool.open()
    spool.append(alerts)  # ...but the spool was not truncated before the crash
    spool.close()
    sink, _ = new_sink(redis_server, tmp_path / "spool")
    assert sink.flush(10)
    assert sink.state().duplicates == 30 and sink.state().sent == 20
    assert_exactly_once_in_order(stream_alerts(redis_server), ["r"], 50)
    sink.close(2)


def test_queue_overflow_with_slow_redis_spills_and_keeps_order(redis_server, tmp_path):
    sink, writer = new_sink(redis_server, tmp_path / "spool", capacity=20, batch_size=8)
    real_send = writer.send

    def slow_send(batch):
        time.sleep(0.01)
        return real_send(batch)

    writer.send = slow_send  # type: ignore[method-assign]
    for i in range(1500):
        sink.publish(make_alert(i, request="fast"))
    assert sink.state().spilled > 0
    assert sink.flush(60)
    assert_exactly_once_in_order(stream_alerts(redis_server), ["fast"], 1500)
    sink.close(2)


def test_stream_is_trimmed_approximately(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM, maxlen=100)
    for start in range(0, 1000, 100):
        writer.send([make_alert(i, request="t") for i in range(start, start + 100)])
    with redis_server.client() as c:
        assert 100 <= c.xlen(STREAM) < 400


def test_two_consumers_in_a_group_share_the_alerts(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    subs = [
        GroupSubscriber(
            make_redis_client(redis_server.url, timeout_s=5), STREAM, "g", name, count=5
        )
        for name in ("c1", "c2")
    ]
    subs[0].ensure_group("0")
    assert subs[1].ensure_group("0") is False  # already there
    got: dict[str, list[str]] = {"c1": [], "c2": []}
    total = 200
    stop = threading.Event()

    def consume(sub):
        while not stop.is_set():
            for d in sub.read_new(block_ms=200):
                got[sub.consumer].append(d.alert().alert_id)
                sub.ack(d.entry_id)

    threads = [threading.Thread(target=consume, args=(s,)) for s in subs]
    for t in threads:
        t.start()
    for start in range(0, total, 10):
        writer.send([make_alert(i, request="g") for i in range(start, start + 10)])
        time.sleep(0.02)
    assert wait_for(lambda: len(got["c1"]) + len(got["c2"]) >= total)
    stop.set()
    for t in threads:
        t.join()
    assert not set(got["c1"]) & set(got["c2"]), "an alert went to both consumers"
    assert sorted(got["c1"] + got["c2"]) == [f"g-{i:06d}" for i in range(total)]
    assert got["c1"] and got["c2"]
    with redis_server.client() as c:
        assert c.xpending(STREAM, "g")["pending"] == 0


DEAD_CONSUMER = """
import sys, time, redis
r = redis.Redis.from_url(sys.argv[1])
r.xreadgroup("g", "dead", {sys.argv[2]: ">"}, count=5)
print("read", flush=True)
time.sleep(600)  # killed before it acknowledges anything
"""


def test_entries_of_a_consumer_killed_before_ack_are_reclaimed(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    live = GroupSubscriber(
        make_redis_client(redis_server.url), STREAM, "g", "live", min_idle_ms=200
    )
    live.ensure_group("0")
    writer.send([make_alert(i, request="k") for i in range(8)])
    proc = subprocess.Popen(
        [sys.executable, "-c", DEAD_CONSUMER, redis_server.url, STREAM],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "read"
    finally:
        proc.kill()
        proc.wait()
    with redis_server.client() as c:
        assert c.xpending(STREAM, "g")["pending"] == 5
    assert live.claim_stale() == []  # not idle long enough yet
    time.sleep(0.3)
    reclaimed = live.claim_stale()
    assert [d.alert().alert_id for d in reclaimed] == [f"k-{i:06d}" for i in range(5)]
    assert all(d.reclaimed for d in reclaimed)
    assert live.ack(*[d.entry_id for d in reclaimed]) == 5
    rest = live.read_new()
    assert [d.alert().alert_id for d in rest] == [f"k-{i:06d}" for i in range(5, 8)]
    live.ack(*[d.entry_id for d in rest])
    with redis_server.client() as c:
        assert c.xpending(STREAM, "g")["pending"] == 0


def run_cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def test_cli_tail_group_reclaims_then_reads_new_and_acks(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    with redis_server.client() as c:
        c.xgroup_create(STREAM, "ops", id="0", mkstream=True)
        writer.send([make_alert(i, request="cli") for i in range(6)])
        c.xreadgroup("ops", "dead", {STREAM: ">"}, count=4)  # read, never acked
    time.sleep(0.2)
    proc = run_cli(
        "alerts",
        "tail",
        "--redis",
        redis_server.url,
        "--group",
        "ops",
        "--consumer",
        "B",
        "--claim-min-idle-ms",
        "100",
        "--limit",
        "6",
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["alert_id"] for r in rows] == [f"cli-{i:06d}" for i in range(6)]
    assert [r.get("reclaimed", False) for r in rows] == [True] * 4 + [False] * 2
    assert rows[0]["ts"].endswith("Z") and rows[0]["stream_id"]
    with redis_server.client() as c:
        assert c.xpending(STREAM, "ops")["pending"] == 0


def test_cli_tail_plain_from_start_and_from_now(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    writer.send([make_alert(i, request="old") for i in range(3)])
    proc = run_cli("alerts", "tail", "--redis", redis_server.url, "--from-start", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["alert_id"] for x in proc.stdout.splitlines()] == [
        f"old-{i:06d}" for i in range(3)
    ]

    live = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "alerts",
            "tail",
            "--redis",
            redis_server.url,
            "--limit",
            "2",
            "--block-ms",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    i = 0
    try:
        while live.poll() is None and i < 500:  # keep adding until the tail has seen two
            writer.send([make_alert(i, request="new")])
            i += 1
            time.sleep(0.05)
        out, err = live.communicate(timeout=30)
    finally:
        live.kill()
    assert live.returncode == 0, err
    got = [json.loads(x)["alert_id"] for x in out.splitlines()]
    assert len(got) == 2 and all(g.startswith("new-") for g in got)
    a, b = (int(g.split("-")[1]) for g in got)
    assert b == a + 1


def test_cli_tail_unreachable_redis_is_a_clean_error():
    proc = run_cli("alerts", "tail", "--redis", "redis://127.0.0.1:1/0", "--limit", "1")
    assert proc.returncode == 2 and "cannot reach Redis" in proc.stderr


def test_example_subscriber(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    writer.send(
        [make_alert(i, request="ex", severity="high" if i % 2 else "low") for i in range(6)]
    )
    writer.send([make_alert(1, request="ex")])  # a replayed duplicate: not stored twice
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "ops" / "subscriber_example.py"),
            "--redis",
            redis_server.url,
            "--min-severity",
            "high",
            "--limit",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["alert_id"] for x in proc.stdout.splitlines()] == [
        "ex-000001",
        "ex-000003",
        "ex-000005",
    ]


def test_cli_tail_group_rereads_its_own_unacked_entries_after_restart(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    with redis_server.client() as c:
        c.xgroup_create(STREAM, "ops", id="0", mkstream=True)
        writer.send([make_alert(i, request="own") for i in range(150)])
        c.xreadgroup("ops", "B", {STREAM: ">"}, count=130)  # B read these, then crashed
    proc = run_cli(
        "alerts",
        "tail",
        "--redis",
        redis_server.url,
        "--group",
        "ops",
        "--consumer",
        "B",
        "--limit",
        "150",
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["alert_id"] for x in proc.stdout.splitlines()] == [
        f"own-{i:06d}" for i in range(150)
    ]
    with redis_server.client() as c:
        assert c.xpending(STREAM, "ops")["pending"] == 0
