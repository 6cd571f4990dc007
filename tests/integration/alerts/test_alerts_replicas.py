"""Alerts confirmed by a replica (``redis_wait_replicas``): a real primary and replica.

Redis replicates asynchronously; with ``wait_replicas=1`` a batch counts as delivered only
once the replica has it. While the replica is down the alerts stay in the spool (nothing is
dropped, the sink reports the problem) and they are delivered, once each, when it is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from monitor.alerts.redis_stream import AlertTransportError, RedisStreamWriter, make_redis_client
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from tests.redis_server import RedisServer, free_port, redis_available
from tests.unit.alerts.fakes import make_alert
from tests.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.slow]

STREAM = "replicated:alerts"


def _replicas_online(primary: RedisServer) -> int:
    """Replicas the primary lists as ``state=online`` (attached and done with the sync)."""
    with primary.client(socket_timeout=1) as c:
        info = c.info("replication")
    return sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
               and v.get("state") == "online")


def _link_up(replica: RedisServer) -> bool:
    with replica.client(socket_timeout=1) as c:
        return c.info("replication").get("master_link_status") == "up"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    if not redis_available():
        pytest.skip("needs redis-server")
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica", port=free_port(),
                          extra_args=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    try:
        assert eventually(lambda: _replicas_online(primary) == 1 and _link_up(replica), timeout=20), \
            "replica attached"
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def test_a_batch_counts_as_written_only_once_the_replica_has_it(pair) -> None:
    primary, replica = pair
    writer = RedisStreamWriter(make_redis_client(primary.url), STREAM, wait_replicas=1, wait_timeout_ms=800)
    result = writer.send([make_alert(i, request="rep") for i in range(5)])
    assert (result.added, result.duplicates) == (5, 0)
    with replica.client() as c:  # WAIT returned: the replica already holds all five
        assert c.xlen(STREAM) == 5
    replica.kill()
    assert eventually(lambda: _replicas_online(primary) == 0, timeout=20), "primary notices the replica left"
    with pytest.raises(AlertTransportError, match="only 0 of 1 replica"):
        writer.send([make_alert(5, request="rep")])


def test_alerts_wait_in_the_spool_while_the_replica_is_down_and_arrive_once(pair, tmp_path: Path) -> None:
    primary, replica = pair
    writer = RedisStreamWriter(make_redis_client(primary.url), STREAM, wait_replicas=1, wait_timeout_ms=800)
    sink = AlertSink(writer, Spool(tmp_path / "spool"), retry_min_s=0.05, retry_max_s=0.3)
    sink.start()
    try:
        sink.publish(make_alert(0, request="sp"))
        assert sink.flush(10)
        replica.kill()
        assert eventually(lambda: _replicas_online(primary) == 0, timeout=20), "primary notices the replica left"
        alerts = [make_alert(i, request="sp") for i in range(1, 6)]
        for a in alerts:
            sink.publish(a)
        assert eventually(lambda: sink.state().spooled >= 5 and not sink.state().connected,
                          timeout=10), "unconfirmed alerts kept in the spool"
        assert "replica" in (sink.state().last_error or "")
        replica.start()
        assert eventually(lambda: _replicas_online(primary) == 1 and _link_up(replica), timeout=20), "replica back"
        assert sink.flush(20)
        with replica.client() as c:
            ids = [f[b"alert_id"].decode() for _, f in c.xrange(STREAM)]
        assert sorted(ids) == sorted(a.alert_id for a in [make_alert(0, request="sp"), *alerts])
    finally:
        sink.close(timeout=2)
    with redis.Redis(port=primary.port) as c:
        assert c.xlen(STREAM) == 6
