"""A real ``redis-server`` for tests: started on a free loopback port with its own data
directory, killable (``kill -9``) and restartable on the same port with the same data.

Persistence is AOF with ``appendfsync always`` so that a write Redis acknowledged
survives ``kill -9`` (what the alert delivery tests rely on). Fixtures built on this
live in ``tests/conftest.py``:

- ``redis_server``: a session-wide server, restarted if a test killed it and flushed
  before each test;
- ``redis_factory``: ``redis_factory()`` starts a private server for one test (stopped
  at the end), for tests that kill and restart Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

REDIS_BIN = Path("/usr/bin/redis-server")


def redis_available() -> bool:
    return REDIS_BIN.exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process bound to 127.0.0.1:``port`` with data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, appendfsync: str = "always",
                 extra_args: Sequence[str] = ()) -> None:
        self.extra_args = tuple(extra_args)
        """More redis-server flags, e.g. ``("--replicaof", "127.0.0.1", "6379")``."""
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.running:
            return self
        args = [
            str(REDIS_BIN),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", "redis.log",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}):\n{log}")
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5) as c:
                    if c.ping():
                        return self
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not start in {timeout}s")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final fsync."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> RedisServer:
        """Start again on the same port with the same data directory."""
        self.kill()
        return self.start()

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def flush(self) -> None:
        with self.client() as c:
            c.flushall()
