"""The policy store: the compiled policy currently in force, and safe reloads.

The store holds one immutable :class:`CompiledPolicy` snapshot. Requests take the
snapshot with :attr:`PolicyStore.current` when they start and keep it to the end.
:meth:`PolicyStore.reload` re-reads the file, validates it in full against the pack and
swaps the reference in one assignment; if the new file is invalid (or unreadable) the
old policy keeps serving, the problems are logged, kept in :attr:`last_error` (for
``/readyz``) and published as an alert of kind ``policy_error``. Reloads are serialized;
reading :attr:`current` never blocks. File watching and SIGHUP live in
:mod:`monitor.policy.watch`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from monitor.alerts.model import Alert, new_alert_id
from monitor.alerts.safelog import safe_log
from monitor.policy.compiled import CompiledPolicy
from monitor.policy.issues import PolicyError, PolicyIssue
from monitor.policy.loader import load_policy_text, policy_version, policy_warnings_text
from monitor.policy.packinfo import PackInfo

log = structlog.get_logger(__name__)

AlertCallback = Callable[[Alert], None]


@dataclass(frozen=True)
class ReloadResult:
    """Outcome of one reload attempt."""

    ok: bool
    """False when the file was rejected (the previous policy keeps serving)."""
    changed: bool
    """True when a new version was swapped in."""
    version: str
    """Version serving after the attempt."""
    attempted_version: str | None
    """sha256 of the bytes that were read (None if the file could not be read)."""
    issues: tuple[PolicyIssue, ...] = ()
    """Why the file was rejected."""
    warnings: tuple[PolicyIssue, ...] = ()
    """For a policy that was swapped in: what ``saeguard policy check`` warns about (a
    calibrated threshold read through another window than its probe's, or on prompt
    tokens); logged as ``policy_warnings``, never a reason to reject."""


class PolicyStore:
    """Holds the policy in force for a file and reloads it safely."""

    def __init__(
        self,
        path: str | Path,
        pack: PackInfo,
        on_alert: AlertCallback | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_alert_id,
    ) -> None:
        self.path = Path(path)
        self.pack = pack
        self._on_alert = on_alert
        self._clock = clock
        self._new_id = new_id
        self._policy: CompiledPolicy | None = None
        self._lock = threading.Lock()
        self._last_error: ReloadResult | None = None

    @property
    def current(self) -> CompiledPolicy:
        """The snapshot in force (take it once per request)."""
        policy = self._policy
        if policy is None:
            raise RuntimeError("no policy loaded yet: call load() first")
        return policy

    @property
    def last_error(self) -> ReloadResult | None:
        """The last rejected reload, until a later reload succeeds."""
        return self._last_error

    def load(self) -> CompiledPolicy:
        """Initial load; raises :class:`PolicyError` or ``OSError`` (nothing to fall
        back to, so the daemon should refuse to start)."""
        with self._lock:
            raw = self.path.read_bytes()
            policy = load_policy_text(raw, self.pack, str(self.path), policy_version(raw))
            self._policy = policy
            self._last_error = None
        log.info("policy_loaded", path=str(self.path), name=policy.name, version=policy.version)
        self._warnings(raw)
        return policy

    def reload(self) -> ReloadResult:
        """Re-read the file; swap it in if valid, else keep the old policy and report."""
        with self._lock:
            old = self._policy
            if old is None:
                raise RuntimeError("no policy loaded yet: call load() first")
            try:
                raw = self.path.read_bytes()
            except OSError as exc:
                issue = PolicyIssue(str(self.path), 1, "(file)", f"cannot read: {exc}")
                return self._reject(old, None, (issue,))
            version = policy_version(raw)
            if version == old.version:
                self._last_error = None
                return ReloadResult(
                    ok=True, changed=False, version=version, attempted_version=version
                )
            try:
                new = load_policy_text(raw, self.pack, str(self.path), version)
            except PolicyError as exc:
                return self._reject(old, version, exc.issues)
            except Exception as exc:  # a validator bug must not take the serving policy down
                safe_log(log, "exception", "policy_validation_crashed", path=str(self.path))
                issue = PolicyIssue(
                    str(self.path), 1, "(file)", f"could not be validated: {type(exc).__name__}: {exc}"
                )
                return self._reject(old, version, (issue,))
            self._policy = new
            self._last_error = None
        log.info(
            "policy_reloaded",
            path=str(self.path),
            name=new.name,
            version=new.version,
            previous=old.version,
        )
        warnings = self._warnings(raw)
        return ReloadResult(ok=True, changed=True, version=new.version, attempted_version=version,
                            warnings=warnings)

    def _warnings(self, raw: bytes) -> tuple[PolicyIssue, ...]:
        """Log the policy's warnings (as ``policy check`` prints them); never raises."""
        try:
            found = tuple(policy_warnings_text(raw, self.pack, str(self.path)))
        except Exception:  # a warning check must not affect loading
            safe_log(log, "exception", "policy_warning_check_failed", path=str(self.path))
            return ()
        if found:
            safe_log(log, "warning", "policy_warnings", path=str(self.path), warnings=[str(w) for w in found])
        return found

    def _reject(
        self, old: CompiledPolicy, attempted: str | None, issues: tuple[PolicyIssue, ...]
    ) -> ReloadResult:
        result = ReloadResult(
            ok=False, changed=False, version=old.version, attempted_version=attempted, issues=issues
        )
        self._last_error = result
        safe_log(
            log,
            "warning",
            "policy_reload_rejected",
            path=str(self.path),
            serving=old.version,
            attempted=attempted,
            errors=[str(i) for i in issues],
        )
        if self._on_alert is not None:
            try:
                self._on_alert(self._error_alert(old, result))
            except Exception:  # the alert sink must not break the reload path
                safe_log(log, "exception", "policy_error_alert_failed")
        return result

    def _error_alert(self, old: CompiledPolicy, result: ReloadResult) -> Alert:
        lines = [str(i) for i in result.issues]
        shown = lines[:20] + ([f"... and {len(lines) - 20} more"] if len(lines) > 20 else [])
        return Alert(
            alert_id=self._new_id(),
            kind="policy_error",
            ts=self._clock(),
            policy_name=old.name,
            policy_version=old.version,
            mode=old.mode,
            action="reload_rejected",
            severity="high",
            detail=f"rejected {self.path} (sha256 {result.attempted_version}); still serving "
            f"{old.version}:\n" + "\n".join(shown),
        )
