"""Alerts through a Redis Cluster failover: three primaries with one replica each; the
stream's primary is killed and its replica promoted while the daemon's alert sink keeps
publishing. Alerts confirmed by the replica before the kill survive; the ones published
during the failover wait in the spool and arrive once the new primary serves the slot;
none is written twice."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from monitor.alerts.redis_stream import RedisStreamWriter, make_redis_client
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from tests.redis_cluster import cluster_ok, cluster_port, owner_port, ping
from tests.redis_server import REDIS_BIN, redis_available
from tests.unit.alerts.fakes import make_alert
from tests.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def cluster6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, subprocess.Popen]]:
    """Three primaries + three replicas, 1 s node timeout; yields port -> process."""
    cli = shutil.which("redis-cli")
    if not redis_available() or cli is None:
        pytest.skip("needs redis-server and redis-cli")
    ports: list[int] = []
    while len(ports) < 6:
        p = cluster_port()
        if p not in ports and p + 10000 not in ports:
            ports.append(p)
    procs = {}
    for port in ports:
        data = tmp_path_factory.mktemp(f"failover-{port}")
        procs[port] = subprocess.Popen(
            [str(REDIS_BIN), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
             "--appendonly", "no", "--save", "", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for port in ports:
            assert eventually(lambda p=port: ping(p), 30), f"node {port} did not start in 30 s"
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        assert eventually(lambda: all(cluster_ok(p) for p in ports), 30), "cluster not ok"
        assert eventually(lambda: all(_replica_linked(p) for p in ports if _role(p) == "slave"), 30)
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait(10)


def _role(port: int) -> str:
    with redis.Redis(port=port, decode_responses=True) as c:
        return str(c.info("replication")["role"])


def _replica_linked(port: int) -> bool:
    with redis.Redis(port=port, decode_responses=True) as c:
        return c.info("replication").get("master_link_status") == "up"


def _replica_of(primary: int, ports: list[int]) -> int:
    for port in ports:
        if port != primary and _role(port) == "slave":
            with redis.Redis(port=port, decode_responses=True) as c:
                if int(c.info("replication")["master_port"]) == primary:
                    return port
    raise AssertionError(f"no replica of {primary}")


def test_alerts_survive_a_failover_of_the_streams_primary_once_each(cluster6, tmp_path):
    ports = list(cluster6)
    stream = "prod:alerts"
    owner = owner_port(ports, stream)
    replica = _replica_of(owner, ports)
    entry = next(p for p in ports if p not in (owner, replica))
    writer = RedisStreamWriter(make_redis_client(f"redis+cluster://127.0.0.1:{entry}/0", timeout_s=0.5), stream)
    sink = AlertSink(writer, Spool(tmp_path / "spool"), batch_size=16, retry_min_s=0.05, retry_max_s=0.5)
    sink.start()
    before = [make_alert(i, request="fo") for i in range(30)]
    for a in before:
        sink.publish(a)
    assert sink.flush(20)
    with redis.Redis(port=owner) as c:  # the replica has them before the primary goes
        assert c.execute_command("WAIT", 1, 5000) == 1

    cluster6[owner].kill()
    cluster6[owner].wait(10)
    during = [make_alert(i, request="fo") for i in range(30, 60)]
    for a in during:
        sink.publish(a)
    assert eventually(lambda: _role(replica) == "master", 30), "the replica was not promoted"
    assert sink.flush(30), f"alerts still spooled after the failover: {sink.state()}"
    for a in during[:10]:  # a publisher retrying after the failover: nothing twice
        sink.publish(a)
    assert sink.flush(20)
    sink.close()

    with redis.Redis(port=replica, decode_responses=True) as c:
        ids = [f["alert_id"] for _id, f in c.xrange(stream)]
    assert sorted(ids) == sorted(a.alert_id for a in before + during)
    assert len(ids) == len(set(ids)) == 60
    assert ids[:30] == [a.alert_id for a in before]  # in order, the pre-failover ones first
