"""Running the daemon: uvicorn programmatically, arq-style shutdown.

SIGTERM / SIGINT: stop intake (new requests get 503 while the listener is still open),
let in-flight requests and streams finish for up to ``shutdown_timeout_s``, then stop
uvicorn, stop the generation worker (queued-but-unstarted jobs fail with 503), flush
the alert sink to Redis for up to ``alert_flush_timeout_s`` (what is left stays in the
disk spool, replayed on the next start) and return 0. A second SIGINT/SIGTERM while
draining skips the wait. SIGHUP reloads the policy.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import structlog
import uvicorn

from monitor.policy import install_sighup_handler
from monitor.server.app import create_app
from monitor.server.runtime import Runtime

log = structlog.get_logger(__name__)


class StructlogHandler(logging.Handler):
    """Forwards uvicorn's stdlib log records to structlog (so they are JSON lines too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger(record.name).log(record.levelno, record.getMessage(), source="uvicorn")
        except Exception:  # logging must never break serving
            self.handleError(record)


UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"structlog": {"()": f"{__name__}.StructlogHandler"}},
    "loggers": {name: {"handlers": ["structlog"], "level": "INFO", "propagate": False}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
}


class GracefulServer(uvicorn.Server):
    """uvicorn's server with drain-then-exit signal handling (no signal re-raise)."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            log.info("web_console", url=f"http://{host}:{port}/ui/")

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = install_sighup_handler(self.runtime.store)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        if self.runtime.gate.draining:
            log.warning("shutdown_forced", signal=signal.Signals(sig).name)
            self.should_exit = True
            return
        log.info("shutdown_requested", signal=signal.Signals(sig).name, in_flight=self.runtime.gate.in_flight)
        self.begin_drain()

    def begin_drain(self) -> None:
        """Stop intake and exit once in-flight work is done (thread-safe)."""
        self.runtime.gate.draining = True
        loop = self._loop
        if loop is None:
            self.should_exit = True
            return
        loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        t0 = time.perf_counter()
        idle = await self.runtime.gate.wait_idle(self.runtime.settings.shutdown_timeout_s)
        log.info("drained" if idle else "drain_timeout", in_flight=self.runtime.gate.in_flight,
                 waited_s=round(time.perf_counter() - t0, 3))
        self.should_exit = True


def make_server(runtime: Runtime) -> GracefulServer:
    s = runtime.settings
    config = uvicorn.Config(create_app(runtime), host=s.host, port=s.port, log_config=UVICORN_LOG_CONFIG,
                            access_log=False, lifespan="off", timeout_graceful_shutdown=5,
                            timeout_keep_alive=5)
    return GracefulServer(config, runtime)


def serve(runtime: Runtime) -> int:
    """Start the runtime, serve until a signal, shut down cleanly; the exit status."""
    server = make_server(runtime)
    runtime.start()
    try:
        server.run()
    finally:
        runtime.close()
    log.info("exited", status=0)
    return 0


@contextmanager
def serve_in_thread(runtime: Runtime, timeout: float = 30.0) -> Iterator[tuple[GracefulServer, str]]:
    """Run the daemon in a background thread (tests, embedding); yields (server, base URL)."""
    server = make_server(runtime)
    runtime.start()
    thread = threading.Thread(target=server.run, name="saeguard-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            runtime.close()
            raise RuntimeError("the HTTP server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield server, f"http://{runtime.settings.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        runtime.close()
