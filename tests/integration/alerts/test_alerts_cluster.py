"""Alerts on a real Redis Cluster (three redis-server nodes, slots spread over them):
``redis+cluster://`` reaches the stream's slot through any node, writes each alert once,
and the consumer-group CLI and the example subscriber read it; with no node reachable the sink spools."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from monitor.alerts.redis_stream import AlertTransportError, RedisStreamWriter, make_redis_client
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from tests.redis_cluster import cluster_ok, cluster_port, owner_port, ping
from tests.redis_server import REDIS_BIN, free_port, redis_available
from tests.unit.alerts.fakes import make_alert
from tests.waiting import eventually

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Three primaries (no replicas), all 16384 slots covered; yields their ports."""
    cli = shutil.which("redis-cli")
    if not redis_available() or cli is None:
        pytest.skip("needs redis-server and redis-cli")
    ports = [cluster_port() for _ in range(3)]
    procs = []
    for port in ports:
        data = tmp_path_factory.mktemp(f"cluster-{port}")
        procs.append(subprocess.Popen(
            [str(REDIS_BIN), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--appendonly", "no",
             "--save", "", "--logfile", "redis.log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        for port in ports:
            assert eventually(lambda p=port: ping(p), 30), f"node {port} did not start in 30 s"
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in ports:
            assert eventually(lambda p=port: cluster_ok(p), 30), "cluster not ok"
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def test_alerts_reach_the_streams_slot_through_another_node_once_each(cluster, tmp_path):
    stream = "prod:alerts"
    owner = owner_port(cluster, stream)
    other = next(p for p in cluster if p != owner)
    url = f"redis+cluster://127.0.0.1:{other}/0"
    # a plain single-node client is redirected away
    with redis.Redis(port=other) as c, pytest.raises(redis.exceptions.MovedError):
        c.xlen(stream)
    writer = RedisStreamWriter(make_redis_client(url), stream)
    sink = AlertSink(writer, Spool(tmp_path / "spool"), batch_size=16)
    sink.start()
    alerts = [make_alert(i, request="cl") for i in range(40)]
    for a in alerts:
        sink.publish(a)
    assert sink.flush(20)
    for port in cluster:  # Redis forgets the script (as after a restart): reloaded, nothing twice
        with redis.Redis(port=port) as c:
            c.script_flush()
    result = writer.send(alerts[30:] + [make_alert(i, request="cl") for i in range(40, 45)])
    assert (result.added, result.duplicates) == (5, 10)
    sink.close()

    with redis.Redis(port=owner, decode_responses=True) as c:
        ids = [f["alert_id"] for _id, f in c.xrange(stream)]
        keys = set(c.scan_iter(count=1000))
    assert ids == [a.alert_id for a in alerts] + [make_alert(i, request="cl").alert_id for i in range(40, 45)]
    assert len(keys) == 1 + 45 and {key_slot(k.encode()) for k in keys} == {key_slot(stream.encode())}
    for port in cluster:
        if port != owner:
            with redis.Redis(port=port) as c:
                assert c.dbsize() == 0

    # a consumer group through the same kind of URL: one command
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "alerts", "tail", "--redis", url, "--stream", stream,
         "--group", "ops", "--consumer", "c1", "--from-start", "--limit", "45", "--block-ms", "200"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["alert_id"] for line in out.stdout.splitlines()] == ids
    # the plain redis-py example subscriber, its own group, through the cluster URL
    out = subprocess.run(
        [sys.executable, str(ROOT / "ops" / "subscriber_example.py"), "--redis", url, "--stream", stream,
         "--group", "example", "--consumer", "e1", "--limit", "45"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["alert_id"] for line in out.stdout.splitlines()] == ids
    with redis.Redis(port=owner, decode_responses=True) as c:
        assert c.xpending(stream, "ops")["pending"] == 0
        assert c.xpending(stream, "example")["pending"] == 0


def test_cluster_unreachable_send_fails_cleanly_and_the_sink_spools(tmp_path):
    url = f"redis+cluster://127.0.0.1:{free_port()}/0"
    writer = RedisStreamWriter(make_redis_client(url, timeout_s=0.3), "s")
    assert writer.ping() is False
    with pytest.raises(AlertTransportError):
        writer.send([make_alert(0)])
    sink = AlertSink(writer, Spool(tmp_path / "spool"), retry_min_s=0.05, retry_max_s=0.2)
    sink.start()
    sink.publish(make_alert(1))
    assert eventually(lambda: sink.state().spooled == 1, 10)
    assert not sink.state().connected
    sink.close(timeout=0.5)
