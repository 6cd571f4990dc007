"""The alert stream and its de-duplication keys share one Redis Cluster hash slot, so the
atomic write-once script works unchanged on Redis Cluster."""

import pytest
from redis.crc import key_slot

from monitor.alerts.redis_stream import dedup_prefix_for


@pytest.mark.parametrize("stream", ["saeguard:alerts", "prod:{tenant-7}:alerts", "a"])
def test_dedup_keys_hash_to_the_stream_slot(stream):
    key = dedup_prefix_for(stream) + "01J9ZK6Q1V6X0W8M2S4T3R5Y7A"
    assert key_slot(key.encode()) == key_slot(stream.encode())
