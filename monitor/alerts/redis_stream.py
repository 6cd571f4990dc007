"""Writing alerts to a Redis stream, at most once per ``alert_id``.

Each alert is written by a small Lua script that, atomically inside Redis, sets a
de-duplication key ``<dedup_prefix><alert_id>`` (``SET NX EX ttl``) and only if that
key was new runs ``XADD <stream> MAXLEN ~ <maxlen> * field value ...``. Re-sending an
alert that Redis already has (a replay after a crash, or a batch whose reply was lost
when the connection dropped) therefore adds nothing: the stream holds each alert once
as long as the de-duplication key lives (``dedup_ttl_s``, default one day). Durability
across a Redis crash needs Redis persistence: AOF (``appendonly yes``) with
``appendfsync always`` loses nothing Redis acknowledged; ``everysec`` may lose the last
second of alerts on a Redis crash (the test fixture in ``tests/redis_server.py`` uses
``always``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitor.alerts.cluster import LazyCluster, cluster_url
from monitor.alerts.model import Alert

DEFAULT_STREAM = "saeguard:alerts"

_XADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""
_XADD_ONCE_SHA = hashlib.sha1(_XADD_ONCE.encode()).hexdigest()


def dedup_prefix_for(stream: str) -> str:
    """De-duplication keys hash to the stream's Redis Cluster slot, so the Lua script's two
    keys live on one node: ``{saeguard:alerts}:seen:<id>`` hashes like ``saeguard:alerts``
    (a key's slot is computed from its first ``{...}`` tag, or the whole key without one)."""
    start = stream.find("{")
    end = stream.find("}", start + 1) if start >= 0 else -1
    tag = stream[start + 1 : end] if start >= 0 and end > start + 1 else stream
    return f"{{{tag}}}:seen:"


class AlertTransportError(Exception):
    """Redis could not take the alerts (unreachable, timed out, refused)."""


def make_redis_client(url: str, timeout_s: float = 1.0) -> Any:
    """A client that fails fast (no built-in retries): the alert sender retries itself.

    ``redis://`` / ``rediss://`` / ``unix://``: one Redis. ``redis+cluster://host:port``:
    a Redis Cluster reached through any of its nodes (:mod:`monitor.alerts.cluster`).
    """
    plain = cluster_url(url)
    if plain is not None:
        return LazyCluster(plain, timeout_s)
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


@dataclass(frozen=True)
class SendResult:
    """What one :meth:`RedisStreamWriter.send` did."""

    added: int
    """Alerts written to the stream."""
    duplicates: int
    """Alerts Redis already had (skipped)."""


class RedisStreamWriter:
    """Writes alerts to one stream with approximate MAXLEN trimming and de-duplication."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str = DEFAULT_STREAM,
        maxlen: int = 100_000,
        dedup_ttl_s: int = 86_400,
        dedup_prefix: str | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> None:
        """``wait_replicas`` > 0: a batch counts as written only once that many replicas
        have it (``WAIT`` at the end of the pipeline). Redis replicates asynchronously, so
        without it an alert the primary acknowledged can vanish in a failover; with it, a
        batch the replicas did not confirm within ``wait_timeout_ms`` raises
        :class:`AlertTransportError` and stays in the spool (re-sending is harmless)."""
        if wait_replicas < 0 or wait_timeout_ms < 1:
            raise ValueError("wait_replicas must be >= 0 and wait_timeout_ms >= 1")
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.dedup_ttl_s = dedup_ttl_s
        self.dedup_prefix = dedup_prefix if dedup_prefix is not None else dedup_prefix_for(stream)

    def send(self, alerts: Sequence[Alert]) -> SendResult:
        """Write ``alerts`` in order, in one pipeline round trip.

        The script runs by ``EVALSHA``; only if Redis does not know it (first use, or
        after a Redis restart without the script cache) is it loaded and the batch
        sent again, which the de-duplication keys make harmless. (redis-py's pipelined
        ``Script`` would ask ``SCRIPT EXISTS`` first: a second round trip on every
        batch, and on a busy daemon every round trip also waits for the GIL.)

        Raises :class:`AlertTransportError` on any Redis error; some alerts of the
        batch may have been written, and sending the batch again is safe.
        """
        if not alerts:
            return SendResult(0, 0)
        try:
            try:
                replies = self._pipeline(alerts).execute()
            except redis.exceptions.NoScriptError:
                self.client.script_load(_XADD_ONCE)
                replies = self._pipeline(alerts).execute()
        except redis.RedisError as exc:
            raise AlertTransportError(f"{type(exc).__name__}: {exc}") from exc
        if self.wait_replicas:
            acked = int(replies[-1])
            replies = replies[:-1]
            if acked < self.wait_replicas:
                raise AlertTransportError(
                    f"only {acked} of {self.wait_replicas} replica(s) confirmed the batch within "
                    f"{self.wait_timeout_ms} ms (kept in the spool, sent again later)")
        added = sum(1 for r in replies if r)
        return SendResult(added=added, duplicates=len(replies) - added)

    def _pipeline(self, alerts: Sequence[Alert]) -> Any:
        pipe = self.client.pipeline(transaction=False)
        for alert in alerts:
            args: list[Any] = [self.dedup_ttl_s, self.maxlen]
            for key, value in alert.to_fields().items():
                args.extend((key, value))
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", _XADD_ONCE_SHA, 2, self.stream, self.dedup_prefix + alert.alert_id, *args
            )
        if self.wait_replicas:
            # on the pipeline's own connection: WAIT covers the writes this connection made
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)  # type: ignore[no-untyped-call]
        return pipe

    def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
