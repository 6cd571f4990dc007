"""Everything the daemon runs with, built from settings: model, guard pack, policy store,
alert sink, scheduler, metrics and the intake gate. Built explicitly (no globals); tests
pass an already-loaded model."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from monitor.alerts.redis_stream import RedisStreamWriter, make_redis_client
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from monitor.policy import PolicyStore, PolicyWatcher, ReloadResult
from monitor.server.jobs import Backend
from monitor.server.metrics import Metrics, counting_publisher
from monitor.server.reload_history import ReloadHistory
from monitor.server.settings import ServerSettings
from monitor.server.worker import BatchWorker, Scheduler, SingleWorker

log = structlog.get_logger(__name__)


class StartupError(RuntimeError):
    """The daemon cannot start (missing pack, invalid policy ...): one line."""


class ObservedPolicyStore(PolicyStore):
    """A :class:`PolicyStore` that counts every reload (HTTP, SIGHUP, file watch) and keeps
    the last ones (the console's reload history)."""

    metrics: Metrics | None = None
    history: ReloadHistory | None = None

    def reload(self) -> ReloadResult:
        result = super().reload()
        if self.history is not None:
            self.history.record(result)
        if self.metrics is not None:
            self.metrics.reloads.labels(result="changed" if result.changed else "ok" if result.ok
                                        else "rejected").inc()
            if not result.ok:
                self.metrics.reload_errors.inc()
        return result


class Gate:
    """Intake control: counts in-flight requests; closed while draining (503)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.draining = False

    def enter(self) -> bool:
        with self._lock:
            if self.draining:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._in_flight > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


@dataclass
class Runtime:
    settings: ServerSettings
    lm: Any
    backend: Backend
    store: ObservedPolicyStore
    sink: AlertSink
    scheduler: Scheduler
    metrics: Metrics
    gate: Gate
    watcher: PolicyWatcher | None = None
    started: bool = False

    @property
    def model_id(self) -> str:
        return self.settings.served_model_id

    @classmethod
    def build_in_thread(cls, settings: ServerSettings) -> Runtime:
        """:meth:`build` on a short-lived thread, so that the serving process's main thread
        never runs a torch op.

        Why: every thread that runs a torch CPU op gets its own OpenMP thread team, and
        libgomp throttles spin-waiting for all teams once its threads outnumber the cores.
        With the model loaded on the main thread and decoding on the generation thread,
        that cost a third of the decode speed on 2 cores (36 -> 23 tok/s, measured); a
        team dies with its thread, so loading on a thread that then exits avoids it.
        """
        out: dict[str, Any] = {}

        def target() -> None:
            try:
                out["runtime"] = cls.build(settings)
            except BaseException as exc:  # re-raised on the caller's thread
                out["error"] = exc

        t = threading.Thread(target=target, name="runtime-build")
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]
        runtime: Runtime = out["runtime"]
        return runtime

    @classmethod
    def build(cls, settings: ServerSettings, loaded_model: Any = None) -> Runtime:
        """Load model, pack and policy and wire the sink; nothing starts yet."""
        from monitor.engine import Engine
        from monitor.engine.weights import WeightFormatError, check_format
        from monitor.guard import Guard
        from monitor.model import ModelSpecError, load_model
        from monitor.pack import PackError, load_pack
        from monitor.policy import PolicyError

        metrics = Metrics()
        # cheap checks first (pack files, the pack's model, policy against the pack), then
        # the model; the pack is read once here and handed to the policy store and the guard
        try:
            pack = load_pack(settings.pack_dir, with_sae=False)
            if loaded_model is None:
                pack.check_model_spec(settings.model)
        except PackError as exc:
            raise StartupError(f"guard pack: {exc}") from None
        spool = Spool(Path(settings.spool_dir))
        writer = RedisStreamWriter(make_redis_client(settings.redis_url), settings.stream, settings.stream_maxlen,
                                   dedup_ttl_s=settings.dedup_ttl_s, wait_replicas=settings.redis_wait_replicas,
                                   wait_timeout_ms=settings.redis_wait_timeout_ms)
        sink = AlertSink(writer, spool)
        publish = counting_publisher(sink.publish, metrics)
        store = ObservedPolicyStore(settings.policy, pack.info, on_alert=publish)
        store.metrics = metrics
        store.history = ReloadHistory()
        try:
            store.load()
        except PolicyError as exc:
            raise StartupError(f"policy {settings.policy} is invalid:\n{exc}") from None
        except OSError as exc:
            raise StartupError(f"cannot read policy {settings.policy}: {exc}") from None
        if loaded_model is None:
            import torch

            torch.set_num_threads(settings.threads)
            try:
                loaded_model = load_model(settings.model, device=settings.device)
            except ModelSpecError as exc:
                raise StartupError(str(exc)) from None
        try:
            pack.check_model(loaded_model.spec, loaded_model.weights_sha256)
            guard = Guard.from_pack(pack.with_sae(str(loaded_model.model.cfg.device)), loaded_model.tokenizer,
                                    model_spec=loaded_model.spec)
        except PackError as exc:
            raise StartupError(f"guard pack: {exc}") from None
        try:
            weights = check_format(pack.weight_format(settings.weights, str(loaded_model.device)), loaded_model.device)
            engine = Engine.from_loaded(loaded_model, weights=weights)
        except WeightFormatError as exc:
            raise StartupError(f"weights: {exc}") from None
        log.info("weights", requested=settings.weights, running=weights)
        backend = Backend(engine=engine, guard=guard, metrics=metrics, publish=publish)
        scheduler: Scheduler
        if settings.max_batch > 1 and engine.supports_batching:
            scheduler = BatchWorker(lambda: engine.batch_decoder(settings.max_batch, settings.prefill_chunk_tokens),
                                    settings.max_queue, threads=settings.threads)
        else:
            scheduler = SingleWorker(settings.max_queue, threads=settings.threads)
        log.info("scheduler", kind=type(scheduler).__name__, max_batch=settings.max_batch,
                 prefill_chunk_tokens=settings.prefill_chunk_tokens)
        return cls(settings=settings, lm=loaded_model, backend=backend, store=store, sink=sink,
                   scheduler=scheduler, metrics=metrics, gate=Gate())

    def start(self) -> None:
        self.sink.start()
        self.scheduler.start()
        if self.settings.watch_policy:
            self.watcher = PolicyWatcher(self.store)
            self.watcher.start()
        self.started = True
        log.info("runtime_started", model=self.model_id, pack=str(self.settings.pack_dir),
                 policy=self.store.current.name, policy_version=self.store.current.version)

    def close(self) -> bool:
        """Stop the worker and watcher, flush alerts; True if every alert reached Redis."""
        self.started = False
        self.scheduler.close(timeout=10.0)
        if self.watcher is not None:
            self.watcher.stop()
        delivered = self.sink.close(self.settings.alert_flush_timeout_s)
        log.info("runtime_closed", alerts_delivered=delivered, spooled=self.sink.state().spooled)
        return delivered

    def refuse_reason(self) -> str | None:
        """Why new generation/scoring requests are refused right now (503), or None."""
        if self.gate.draining:
            return "the server is shutting down and accepts no new requests"
        if not self.started:
            return "the server is not ready yet"
        policy = self.store.current
        if policy.on_monitor_error == "fail_closed":
            state = self.sink.state()
            if state.spooling or not state.connected:
                return ("alerts cannot reach Redis (spooling to disk) and the policy "
                        f"'{policy.name}' is fail_closed: refusing new requests until Redis is back")
        return None

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        policy = self.store.current
        err = self.store.last_error
        state = self.sink.state()
        guard = self.backend.guard
        detail: dict[str, Any] = {
            "model": {"ok": True, "id": self.model_id, "spec": getattr(self.lm, "spec", ""),
                      "device": str(self.lm.model.cfg.device),
                      "weights_sha256": getattr(self.lm, "weights_sha256", ""),
                      "weight_format": self.backend.engine.weights},
            "pack": {"ok": True, "dir": str(self.settings.pack_dir), "hook": guard.hook_name,
                     "d_sae": int(guard.W_dec.shape[0]), "probes": list(guard.probes.names)},
            "policy": {"ok": True, "name": policy.name, "version": policy.version, "mode": policy.mode,
                       "on_monitor_error": policy.on_monitor_error, "path": str(self.store.path),
                       "last_reload_error": None if err is None else {
                           "attempted_version": err.attempted_version,
                           "issues": [str(i) for i in err.issues]}},
            "alerts": {"ok": state.connected or not state.last_error.startswith("spool"),
                       "redis_connected": state.connected, "spooling": state.spooling,
                       "queue_depth": state.queue_depth, "spooled": state.spooled, "sent": state.sent,
                       "last_error": state.last_error, "stream": self.settings.stream},
            "worker": {"ok": self.started, "scheduler": type(self.scheduler).__name__,
                       "batch_active": getattr(self.scheduler, "active", 0), "queue_depth": self.scheduler.depth,
                       "in_flight": self.gate.in_flight, "draining": self.gate.draining},
        }
        reason = self.refuse_reason()
        ready = reason is None and all(part["ok"] for part in detail.values())
        if reason:
            detail["reason"] = reason
        return ready, detail
