"""A batch of alerts costs one Redis round trip (alert latency: every round trip of the
sender thread also waits for the GIL on a busy daemon), and the write-once script
survives Redis forgetting it (SCRIPT FLUSH, or a restart)."""

from __future__ import annotations

import pytest

from monitor.alerts.model import Alert
from monitor.alerts.redis_stream import RedisStreamWriter, make_redis_client
from tests.unit.alerts.fakes import make_alert

pytestmark = pytest.mark.redis

STREAM = "rt:alerts"


def command_calls(client, name: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


def test_each_batch_is_one_pipeline_without_script_checks(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    with redis_server.client() as c:
        c.script_flush()
        writer.send([make_alert(0)])  # first use: NOSCRIPT, load, send again
        c.config_resetstat()
        for b in range(5):
            assert writer.send([make_alert(b * 10 + i + 1) for i in range(3)]).added == 3
        assert command_calls(c, "evalsha") == 15
        assert command_calls(c, "script|exists") == 0 and command_calls(c, "script|load") == 0
        assert c.xlen(STREAM) == 16


def test_script_forgotten_by_redis_is_reloaded_and_nothing_is_written_twice(redis_server):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), STREAM)
    first = [make_alert(i) for i in range(4)]
    assert writer.send(first).added == 4
    with redis_server.client() as c:
        c.script_flush()  # as after a Redis restart: the script cache is empty
        result = writer.send(first[2:] + [make_alert(i) for i in range(4, 7)])
        assert (result.added, result.duplicates) == (3, 2)
        ids = [Alert.from_fields(f).alert_id for _id, f in c.xrange(STREAM)]
    assert ids == [a.alert_id for a in first] + [make_alert(i).alert_id for i in range(4, 7)]
