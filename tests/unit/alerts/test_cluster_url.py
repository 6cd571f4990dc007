"""``--redis redis+cluster://...`` selects the cluster client, without connecting at start
(the daemon must start, and spool, while Redis is away)."""

import pytest

from monitor.alerts.cluster import LazyCluster, cluster_url
from monitor.alerts.redis_stream import make_redis_client


@pytest.mark.parametrize(
    ("url", "plain"),
    [
        ("redis+cluster://10.0.0.5:7000/0", "redis://10.0.0.5:7000/0"),
        ("rediss+cluster://user:pw@node:7000", "rediss://user:pw@node:7000"),
        ("REDIS+CLUSTER://node:7000", "redis://node:7000"),
        ("redis://127.0.0.1:6379/0", None),
        ("unix:///run/redis.sock", None),
        ("node:7000", None),
    ],
)
def test_cluster_url(url, plain):
    assert cluster_url(url) == plain


def test_cluster_client_is_built_on_first_use():
    client = make_redis_client("redis+cluster://127.0.0.1:1/0", timeout_s=0.1)
    assert isinstance(client, LazyCluster)
    assert client._client is None
