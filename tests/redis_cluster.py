"""Helpers for tests on a real Redis Cluster (nodes started by the tests themselves)."""

from __future__ import annotations

import random
import socket

import redis
from redis.crc import key_slot


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 50000)
        if all(free(p) for p in (port, port + 10000)):
            return port


def free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ping(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=0.5) as c:
            return bool(c.ping())
    except redis.RedisError:
        return False


def cluster_ok(port: int) -> bool:
    with redis.Redis(port=port) as c:
        return bool(c.cluster("info").get("cluster_state") == "ok")


def owner_port(ports: list[int], stream: str) -> int:
    slot = key_slot(stream.encode())
    with redis.Redis(port=ports[0], decode_responses=True) as c:
        for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
    raise AssertionError("slot not covered")
