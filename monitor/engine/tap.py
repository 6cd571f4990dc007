"""The activation tap: a scoped callback on one residual hook point.

``with Tap(model, "blocks.15.hook_resid_post", callback):`` puts a hook on that
``HookPoint`` through :func:`monitor.engine.hooks.hook_scope`, which removes it in
``finally``, also when the body or the callback raised. For every forward pass the decode loop runs, the callback receives the residual
for the *new* positions only (prefill: all prompt positions; decode: one position per
sequence) and a :class:`TapCall` that says which positions and tokens those are. It may
return a tensor of the same shape to replace the residual (a clamp or steer), or None to
leave it unchanged.

An exception inside the callback is caught in one place (here), recorded as a
:class:`TapError` carrying the request id, hook, phase and position, and the forward pass
continues with the residual unchanged, so the KV cache stays consistent. The decode loop
then raises it (``on_error="raise"``) or reports it on the stream and continues
unmonitored (``on_error="continue"``, the policy's ``fail_open``). Never swallowed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import torch

from monitor.engine.hooks import hook_point, hook_scope

log = structlog.get_logger(__name__)

Phase = Literal["prefill", "decode", "score"]


@dataclass(frozen=True)
class TapCall:
    """What the residual handed to a tap callback corresponds to."""

    hook_name: str
    phase: Phase
    """``prefill`` (prompt positions), ``decode`` (one new position per step) or
    ``score`` (the final generated token, seen but no longer changeable)."""
    start_pos: int
    """Absolute position of the first new residual row."""
    token_ids: torch.Tensor
    """[batch, new_pos] token ids at those positions."""
    request_ids: tuple[str, ...]
    """One per batch row."""
    batch: torch.Tensor | None = None
    """In a continuous-batching step, each request's callback gets its own row; this is
    the whole step's residual [rows, 1, d_model] (read-only), so that a callback can do
    its per-row work for all rows at once (the guard encodes them in one SAE call)."""
    row: int = 0
    """This request's row in ``batch``."""


TapCallback = Callable[[torch.Tensor, TapCall], "torch.Tensor | None"]


class TapError(RuntimeError):
    """A tap callback failed; reported with the request it happened in."""

    def __init__(self, request_id: str, hook_name: str, phase: str, position: int, cause: BaseException):
        super().__init__(
            f"tap callback failed (request {request_id}, hook {hook_name}, {phase} at position {position}): "
            f"{type(cause).__name__}: {cause}"
        )
        self.request_id = request_id
        self.hook_name = hook_name
        self.phase = phase
        self.position = position
        self.__cause__ = cause


class Tap:
    """Scoped residual tap on ``hook_name`` of a ``HookedTransformer``."""

    def __init__(self, model: Any, hook_name: str, callback: TapCallback):
        hook_point(model, hook_name)  # an unknown name fails here, not at attach time
        self.model = model
        self.hook_name = hook_name
        self.callback = callback
        self.enabled = True
        self.errors: list[TapError] = []
        self._call: TapCall | None = None
        self._scope: AbstractContextManager[None] | None = None

    # -- scope -------------------------------------------------------------------------
    def __enter__(self) -> Tap:
        if self._scope is not None:
            raise RuntimeError("Tap is already attached")
        scope = hook_scope(self.model, [(self.hook_name, self._hook)])
        scope.__enter__()
        self._scope = scope
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        if self._scope is not None:
            scope, self._scope = self._scope, None
            scope.__exit__(None, None, None)

    @property
    def attached(self) -> bool:
        return self._scope is not None

    # -- per forward -------------------------------------------------------------------
    def set_call(self, call: TapCall | None) -> None:
        """Set by the decode loop before each forward pass."""
        self._call = call

    def take_errors(self) -> list[TapError]:
        errs, self.errors = self.errors, []
        return errs

    def _hook(self, output: torch.Tensor, hook: Any = None) -> torch.Tensor | None:  # noqa: ARG002 - hook_scope signature
        call = self._call
        if call is None or not self.enabled:
            return None
        try:
            new = self.callback(output, call)
            if new is not None and new.shape != output.shape:
                raise ValueError(f"callback returned shape {tuple(new.shape)}, expected {tuple(output.shape)}")
        except Exception as exc:  # caught in one place, recorded, re-raised by the caller
            err = TapError(",".join(call.request_ids), self.hook_name, call.phase, call.start_pos, exc)
            log.error("tap_callback_failed", request_id=err.request_id, hook=self.hook_name,
                      phase=call.phase, position=call.start_pos, error=str(exc))
            self.errors.append(err)
            return None
        return new
