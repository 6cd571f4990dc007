"""Triggers for :meth:`PolicyStore.reload`: a file watcher thread and SIGHUP.

The watcher watches the policy file's *directory* (editors often save by writing a
temporary file and renaming it over the original, and Kubernetes swaps a symlink, both
of which a watch on the file itself would miss) and calls reload on any change there;
reloading unchanged bytes does nothing.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import structlog
from watchfiles import watch

from monitor.alerts.safelog import safe_log
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
        directory = self.store.path.absolute().parent
        safe_log(log, "info", "policy_watch_started", path=str(self.store.path))
        try:
            # Any change in the directory triggers a reload: that also catches saves by
            # rename and symlink swaps (e.g. Kubernetes ConfigMap volumes); a reload of
            # unchanged bytes is a cheap no-op.
            for _changes in watch(
                directory,
                watch_filter=None,
                debounce=self.debounce_ms,
                stop_event=self._stop,
                recursive=False,
                raise_interrupt=False,
                force_polling=self.force_polling,
            ):
                _reload_logged(self.store)
        except Exception:
            safe_log(log, "exception", "policy_watch_failed", path=str(self.store.path))
        safe_log(log, "info", "policy_watch_stopped", path=str(self.store.path))


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
        safe_log(log, "exception", "policy_reload_crashed", path=str(store.path))
