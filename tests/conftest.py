"""Fixtures shared by all tests: a real redis-server (see tests/redis_server.py), and the
torch thread count (``SAEGUARD_TEST_THREADS``, default 2).

The suite must pass on any x86 CPU (Intel or AMD: MKL and ATen pick other kernels there,
``MKL_ENABLE_INSTRUCTIONS=AVX2`` and ``ATEN_CPU_CAPABILITY=default`` show those paths on
Intel) and with 1 or 2 threads (other summation orders). So no test compares the floats
of two computation paths for bit equality or a strict ordering at the edge: numerical
claims are tolerances, and tests assert what a user notices (the same greedy tokens, the
same top features, a contribution removed to within a tolerance).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest


def threads_for_tests() -> int:
    """torch threads for this run: ``SAEGUARD_TEST_THREADS`` (1 or 2 in CI), default 2."""
    return max(1, int(os.environ.get("SAEGUARD_TEST_THREADS", "2")))


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001 - pytest hook signature
    import torch

    n = threads_for_tests()
    torch.set_num_threads(n)
    # daemons and CLIs the tests start read these (pydantic settings / OpenMP)
    os.environ.setdefault("SAEGUARD_THREADS", str(n))
    os.environ["OMP_NUM_THREADS"] = str(n)

try:
    from tests.redis_server import RedisServer, redis_available
except ImportError:  # tests/ is not a package in this checkout
    from redis_server import RedisServer, redis_available  # type: ignore[no-redef]

@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """A test that runs the CLI configures structlog; later tests start from defaults."""
    yield
    import structlog

    structlog.reset_defaults()


NO_REDIS = "needs /usr/bin/redis-server (Debian package redis-server), which is not installed"


@pytest.fixture(scope="session")
def _redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip(NO_REDIS)
    server = RedisServer(tmp_path_factory.mktemp("redis-session")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(_redis_session: RedisServer) -> RedisServer:
    """The session's redis-server, running (restarted if a test killed it) and empty."""
    _redis_session.start()
    _redis_session.flush()
    return _redis_session


@pytest.fixture
def redis_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], RedisServer]]:
    """``redis_factory()`` -> a private, started server; all are stopped after the test."""
    if not redis_available():
        pytest.skip(NO_REDIS)
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
