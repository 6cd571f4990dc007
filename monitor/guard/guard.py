"""``Guard`` joins a guard pack (SAE + probes), a policy snapshot and an alert publisher;
``GuardSession`` is its per-request state and the tap callback that runs inside the
forward pass.

Per new position (prefill: every prompt position; decode: one per step):

1. only the positions that count (:func:`monitor.guard.positions.monitorable`): not
   position 0 (an attention sink with ~150x the residual norm), not special tokens
   (``<|im_start|>``, ``<|im_end|>``, ...), not other sink-like rows (norm > 10x the
   request's median); the others are never encoded, scored or changed;
2. ``z = sae.encode(x)``; ``scores = sigmoid(z @ W + x @ W_resid + b)`` for every probe at
   once (SAE probes read ``z``, dense probes the residual ``x`` itself, before any change);
3. the request's :class:`~monitor.policy.engine.RequestMonitor` steps through the
   positions in order and returns alerts, active clamps/steers and stop;
4. alerts go to the publisher (never blocks); clamps are written back error-preserving
   (``x + (v - z[idx]) @ W_dec[idx]``), steers add ``strength * direction``; a stop ends
   the generation before its next token is emitted.

Interventions only happen in phase ``prefill``/``decode`` of a generation with
``intervene=True``; monitor-only sessions (``/v1/score``, shadow mode) leave the residual
untouched. Every position's scores and actions are kept as :class:`PositionReport` s for
the caller to stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from monitor.alerts.model import Alert
from monitor.engine.tap import Tap, TapCall
from monitor.guard.interventions import clamp_features, steer
from monitor.guard.positions import monitorable
from monitor.guard.probebank import ProbeBank
from monitor.pack.loader import GuardPack
from monitor.policy.compiled import CompiledPolicy
from monitor.policy.engine import RequestContext, StepResult

Scope = Literal["prompt", "response"]



@dataclass(frozen=True)
class PositionReport:
    """Scores and decisions at one monitored position."""

    position: int
    """Absolute token position in the sequence."""
    token_index: int
    """Index within its scope (the n-th response token, or the prompt position)."""
    scope: Scope
    token: str
    scores: dict[str, float]
    fired: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    """What was done here: ``alert:<rule>``, ``clamp:<fid>=<v>``, ``steer:<target>``, ``stop``
    (shadow mode: ``would_clamp`` ...)."""

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "token_index": self.token_index, "scope": self.scope,
                "token": self.token, "scores": {k: round(v, 4) for k, v in self.scores.items()},
                "fired": list(self.fired), "actions": list(self.actions)}


class Guard:
    """A loaded pack + probe bank, ready to start per-request sessions."""

    def __init__(self, sae: Any, probes: ProbeBank, hook_name: str, tokenizer: Any, model_spec: str = ""):
        self.sae = sae
        self.probes = probes
        self.hook_name = hook_name
        self.tokenizer = tokenizer
        self.model_spec = model_spec
        self.W_dec: Tensor = sae.W_dec.detach()
        self.special_ids = frozenset(int(i) for i in getattr(tokenizer, "all_special_ids", []) or [])
        self._step_codes: tuple[Tensor, Tensor] | None = None
        """(a batched step's residual, its SAE codes): one encode per step for all rows."""

    def encode(self, rows: Tensor, call: TapCall) -> Tensor:
        """SAE codes of ``rows`` (one request's positions). In a batched decode step
        (``call.batch``) all rows of the step are encoded in one call, the first time any
        request's callback asks, and each request takes its own row, as long as that row
        is exactly the step's (a callback earlier in the chain may have rewritten it)."""
        batch = call.batch
        if batch is not None and rows.shape[0] == 1:
            cached = self._step_codes
            if cached is None or cached[0] is not batch:
                cached = (batch, self.sae.encode(batch[:, 0]))
                self._step_codes = cached
            if torch.equal(rows[0], batch[call.row, 0]):
                return cached[1][call.row : call.row + 1]
        out: Tensor = self.sae.encode(rows)
        return out

    @classmethod
    def from_pack(cls, pack: GuardPack, tokenizer: Any, model_spec: str = "") -> Guard:
        """From a :class:`monitor.pack.GuardPack` with its SAE loaded (probes optional: then
        no probe scores).

        Raises :class:`monitor.pack.PackError` when the probes were trained on another SAE
        than the pack's (checked again here, not only in ``load_pack``: this is where
        the probe weights start scoring, and a ``GuardPack`` can be built by hand).
        """
        from monitor.pack.errors import PackError
        from monitor.pack.loader import check_probes_sae, probes_doc

        device = pack.sae.W_dec.device
        if pack.probes is not None and pack.probes.probes:
            check_probes_sae(pack.root, probes_doc(pack.probes))
            try:
                bank = ProbeBank.from_probes(pack.probes, pack.features, device=device, W_dec=pack.sae.W_dec)
            except ValueError as exc:
                raise PackError(f"{pack.root}: {exc}") from exc
        else:
            bank = ProbeBank.empty(int(pack.sae.cfg.d_sae), device=device)
        return cls(pack.sae, bank, pack.hook_name, tokenizer, model_spec)

    def session(
        self,
        policy: CompiledPolicy,
        request_id: str,
        publish: Callable[[Alert], None],
        scope_of: Callable[[int], Scope],
        intervene: bool = True,
        stop: Callable[[str], None] | None = None,
        keep_reports: bool = True,
    ) -> GuardSession:
        ctx = RequestContext(model=self.model_spec, hook=self.hook_name)
        return GuardSession(self, policy, policy.new_request(request_id, ctx), publish, scope_of,
                            intervene and policy.mode == "enforce", stop, keep_reports)

    @contextmanager
    def attach(self, model: Any, session: GuardSession) -> Iterator[Tap]:
        """Attach ``session`` to ``model`` as a tap; removed in ``finally``."""
        with Tap(model, self.hook_name, session.callback) as tap:
            yield tap


@dataclass
class GuardSession:
    guard: Guard
    policy: CompiledPolicy
    monitor: Any
    publish: Callable[[Alert], None]
    scope_of: Callable[[int], Scope]
    intervene: bool
    stop: Callable[[str], None] | None
    keep_reports: bool = True
    reports: list[PositionReport] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    clamped_positions: int = 0
    stopped: str | None = None
    _response_index: int = 0
    _ref_norm: float | None = None
    _last_response_z: Tensor | None = None
    """SAE codes at the latest response position (the evidence of an end-of-response verdict)."""

    @property
    def request_id(self) -> str:
        return str(self.monitor.request_id)

    def take_reports(self) -> list[PositionReport]:
        out, self.reports = self.reports, []
        return out

    def callback(self, x: Tensor, call: TapCall) -> Tensor | None:
        g = self.guard
        ids = call.token_ids[0].tolist()
        counted = monitorable(call.token_ids[0], start_pos=call.start_pos, special_ids=g.special_ids,
                              resid=x[0], ref_norm=self._ref_norm)
        if self._ref_norm is None:
            # the request's reference norm: the median over its first call's counted rows (the
            # whole prompt, or its first chunk when a long prompt joining a running batch is
            # prefilled in chunks; the outliers it catches are ~150x, so either serves)
            self._ref_norm = counted.ref_norm
        keep = counted.mask.nonzero().flatten().tolist()
        if not keep:
            return None
        rows = x[0, keep]
        z = g.encode(rows, call)
        scores = g.probes.score(z, rows)
        changed = False
        out = x
        can_change = self.intervene and call.phase in ("prefill", "decode")
        for j, i in enumerate(keep):
            pos = call.start_pos + i
            scope = self.scope_of(pos)
            token = g.tokenizer.decode([ids[i]])
            index = self._response_index if scope == "response" else pos
            if scope == "response":
                self._response_index += 1
            score_map = dict(zip(g.probes.names, scores[j].tolist(), strict=True))
            zj = z[j]
            if scope == "response":
                self._last_response_z = zj
            res: StepResult = self.monitor.step(
                score_map, index, token, scope,
                feature_evidence=lambda name, zj=zj: g.probes.evidence(name, zj),
            )
            actions = self._apply_alerts(res)
            if can_change and (res.clamps or res.steers):
                if not changed:
                    out, changed = x.clone(), True
                out[0, i] = self._intervene(out[0, i], zj, res, actions)
            if res.stop and self.stopped is None and self.intervene:
                self.stopped = res.stop
                actions.append("stop")
                if self.stop is not None:
                    self.stop(res.stop)
            if self.keep_reports:
                self.reports.append(PositionReport(pos, index, scope, token, score_map, res.fired, tuple(actions)))
        return out if changed else None

    def finish(self) -> list[Alert]:
        """The response has ended: the policy's ``at: response_end`` verdicts are read now
        (on the window ending at the last response token) and their alerts published; each
        names the features behind the score at that token. Call once, after the last
        forward pass (a second call does nothing)."""
        g, z = self.guard, self._last_response_z
        res = self.monitor.finish(
            feature_evidence=None if z is None else (lambda name: g.probes.evidence(name, z)))
        self._apply_alerts(res)
        return list(res.alerts)

    def _apply_alerts(self, res: StepResult) -> list[str]:
        actions = []
        for alert in res.alerts:
            self.publish(alert)
            self.alerts.append(alert)
            actions.append(f"{alert.action}:{alert.rule_id}")
        return actions

    def _intervene(self, x: Tensor, z: Tensor, res: StepResult, actions: list[str]) -> Tensor:
        g = self.guard
        if res.clamps:
            idx = torch.tensor(list(res.clamps.keys()), dtype=torch.long, device=z.device)
            vals = torch.tensor(list(res.clamps.values()), dtype=z.dtype, device=z.device)
            x = clamp_features(x, z, g.W_dec, idx, vals)
            self.clamped_positions += 1
            actions.extend(f"clamp:{f}={v:g}" for f, v in res.clamps.items())
        for target in res.steers:
            if isinstance(target.target, int):
                direction = g.W_dec[target.target]
            else:
                direction = g.probes.direction(target.target, g.W_dec)
            x = steer(x, direction, target.strength)
            actions.append(f"steer:{target.target}")
        return x


def scope_by_prompt_length(prompt_len: int) -> Callable[[int], Scope]:
    """Generation: positions before ``prompt_len`` are the prompt, later ones the response."""
    return lambda pos: "prompt" if pos < prompt_len else "response"


def scope_by_spans(response_spans: Sequence[tuple[int, int]]) -> Callable[[int], Scope]:
    """Scoring a transcript: positions inside ``[start, end)`` spans are the response."""
    return lambda pos: "response" if any(s <= pos < e for s, e in response_spans) else "prompt"
