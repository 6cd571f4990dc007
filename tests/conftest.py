"""Fixtures shared by all tests: a real redis-server (see tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

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
