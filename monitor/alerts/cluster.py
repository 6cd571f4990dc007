"""Redis Cluster as the alert store: ``redis+cluster://host:port`` (or
``rediss+cluster://``) names any node of the cluster.

The daemon's keys all live in the stream's hash slot (see
:func:`monitor.alerts.redis_stream.dedup_prefix_for`), so what a cluster needs is only a
client that finds the node owning that slot and follows ``MOVED``/``ASK`` redirects
after a resharding or failover: redis-py's ``RedisCluster``. It is created lazily,
because ``RedisCluster`` reads the slot map when it is built and the daemon must start
(and spool alerts) while Redis is away, as it does with a single Redis.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL scheme -> the scheme redis-py's cluster client is given."""


def cluster_url(url: str) -> str | None:
    """The plain ``redis://`` URL for a ``redis+cluster://`` one; None for other URLs."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        return None
    return f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}"


class LazyCluster:
    """A ``RedisCluster`` built on first use. Any cluster-level failure (no node reachable,
    slots not covered) is raised as ``redis.ConnectionError``, the error the alert writer
    already treats as "Redis is away: spool and retry"."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def get(self) -> RedisCluster:
        with self._lock:
            if self._client is None:
                try:
                    self._client = RedisCluster.from_url(
                        self.url,
                        socket_timeout=self.timeout_s,
                        socket_connect_timeout=self.timeout_s,
                        retry=Retry(NoBackoff(), 1),  # one retry: follow a failover's new map
                    )
                except RedisClusterException as exc:
                    raise redis.ConnectionError(f"Redis Cluster at {self.url}: {exc}") from exc
            return self._client

    def pipeline(self, transaction: bool = False) -> Any:
        return _Guarded(self.get().pipeline(transaction=transaction))  # type: ignore[no-untyped-call]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.get(), name)
        return _guard(attr) if callable(attr) else attr

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class _Guarded:
    """A cluster pipeline whose cluster-level failures are ``redis.ConnectionError``."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pipe, name)
        return _guard(attr) if callable(attr) else attr


def _guard(fn: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc

    return call
