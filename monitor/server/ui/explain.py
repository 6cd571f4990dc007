"""What the SAE saw at one token: one forward pass over the conversation up to that
token, the residual at the guard's hook encoded with the pack's SAE, the probes scored
on it, and the features behind each probe's score (``w[f] * z[f]``).

The forward pass has no guard attached (nothing is clamped, steered or alerted), so a
position after a clamp or steer of the original generation is explained as the model
would have computed it without that intervention; the console says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from monitor.engine import SamplingParams, Tap, TapCall
from monitor.server.jobs import Backend


@dataclass(frozen=True)
class Explained:
    position: int
    token: str
    scores: dict[str, float]
    probes: dict[str, list[dict[str, Any]]]
    """Per probe: the features contributing most to its logit, with ``contribution``."""
    top_features: list[dict[str, Any]]
    """The most active SAE features at the position."""


def _features(ids: Sequence[int], acts: Sequence[float], label: Callable[[int], str],
              extra: Sequence[float] | None = None) -> list[dict[str, Any]]:
    out = []
    for n, (fid, act) in enumerate(zip(ids, acts, strict=True)):
        item: dict[str, Any] = {"id": int(fid), "activation": round(float(act), 4), "label": label(int(fid))}
        if extra is not None:
            item["contribution"] = round(float(extra[n]), 4)
        out.append(item)
    return out


@torch.no_grad()
def explain_position(backend: Backend, ids: Sequence[int], label: Callable[[int], str], k: int = 8) -> Explained:
    """Explain the last position of ``ids`` (run on the scheduler's thread)."""
    guard, engine = backend.guard, backend.engine
    captured: dict[str, Tensor] = {}

    def capture(x: Tensor, call: TapCall) -> None:
        if call.phase == "prefill":
            captured["row"] = x[0, -1].detach().clone()

    with Tap(engine.model, guard.hook_name, capture) as tap:
        gen = engine.generation(list(ids), SamplingParams(max_tokens=1), taps=[tap],
                                request_id="ui-explain", on_tap_error="raise")
        for _ in gen:
            break
    z = guard.sae.encode(captured["row"][None])[0]
    scores = guard.probes.score(z[None], captured["row"][None])[0]
    probes: dict[str, list[dict[str, Any]]] = {}
    for j, name in enumerate(guard.probes.names):
        contrib = guard.probes.contributions(name, z)
        top = torch.topk(contrib, min(k, contrib.numel()))
        keep = [n for n, v in enumerate(top.values.tolist()) if v > 0]
        fids = [int(top.indices[n]) for n in keep]
        probes[name] = _features(fids, [float(z[f]) for f in fids], label,
                                 [float(top.values[n]) for n in keep])
    active = torch.topk(z, min(k, z.numel()))
    top_features = [f for f in _features(active.indices.tolist(), active.values.tolist(), label)
                    if f["activation"] > 0]
    return Explained(position=len(ids) - 1, token=guard.tokenizer.decode([int(ids[-1])]),
                     scores={n: round(float(s), 4) for n, s in zip(guard.probes.names, scores.tolist(),
                                                                    strict=True)},
                     probes=probes, top_features=top_features)
