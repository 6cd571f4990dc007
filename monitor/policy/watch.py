"""Triggers for :meth:`PolicyStore.reload`: a file watcher thread and SIGHUP.

The watcher watches the policy file's *directory* (editors often save by writing a
temporary file and renaming it over the original, which a watch on the file itself
would miss) and reloads when an event names the policy file.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from watchfiles import Change, watch

from monitor.policy.store import PolicyStore

log = structlog.get_logger(__name__)


class PolicyWatcher:
    """Reload a :class:`PolicyStore` whenever its file changes (background thread)."""

    def __init__(
        self, store: PolicyStore, debounce_ms: int = 200, force_polling: bool | None = None
    ) -> None:
        self.store = store
        self.debounce_ms = debounce_ms
        self.force_polling = force_polling
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="policy-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> PolicyWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        target = self.store.path.resolve()

        def only_policy(change: Change, path: str) -> bool:  # noqa: ARG001
            return Path(path).resolve() == target

        log.info("policy_watch_started", path=str(target))
        try:
            for _changes in watch(
                target.parent,
                watch_filter=only_policy,
                debounce=self.debounce_ms,
                stop_event=self._stop,
                recursive=False,
                raise_interrupt=False,
                force_polling=self.force_polling,
            ):
                try:
                    self.store.reload()
                except Exception:
                    log.exception("policy_reload_crashed", path=str(target))
        except Exception:
            log.exception("policy_watch_failed", path=str(target))
        log.info("policy_watch_stopped", path=str(target))


def install_sighup_handler(store: PolicyStore) -> Any:
    """Reload ``store`` on SIGHUP; returns the previous handler (to restore it).

    The handler only starts a short thread that calls :meth:`PolicyStore.reload`, so
    no file I/O or locking happens inside the signal handler. Must be called from the
    main thread (a Python rule for ``signal.signal``).
    """

    def on_hup(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        threading.Thread(
            target=_reload_logged, args=(store,), name="policy-sighup", daemon=True
        ).start()

    return signal.signal(signal.SIGHUP, on_hup)


def _reload_logged(store: PolicyStore) -> None:
    try:
        store.reload()
    except Exception:
        log.exception("policy_reload_crashed", path=str(store.path))
