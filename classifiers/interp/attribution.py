"""Attribution of a next-token preference to SAE features.

Metric: ``logit_diff = logit[target] - logit[foil]`` at the prompt's last position (e.g.
`` sad`` vs `` happy`` after ``John says, "I want to be alone right now." John feels``).

1. **Linear estimate** (one forward + one backward): with ``g = d logit_diff / d x`` at the
   hook, ablating feature ``f`` moves ``x`` by ``-z[p, f] * W_dec[f]`` at each position
   ``p``, so ``est[f] = -sum_p z[p, f] * (g[p] . W_dec[f])`` (attribution patching). Cheap
   for all features at once; used to pick candidates.
2. **Exact ablation** of each candidate: rerun the prompt with the feature clamped to 0
   at every position except 0 and special tokens (error term preserved, the same
   :class:`~monitor.guard.interventions.FeatureIntervention` the guard uses) and take
   ``effect[f] = logit_diff_ablated - logit_diff_clean``. A negative effect means the
   feature pushes toward ``target``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.interp.evidence import FeatureEvidence, feature_evidence
from classifiers.interp.runtime import keep_mask
from monitor.engine.hooks import run_with_hooks
from monitor.guard.interventions import FeatureIntervention, intervention_hook


@dataclass(frozen=True)
class Attribution:
    id: int
    estimate: float
    """Linear (gradient x activation) estimate of the ablation effect."""
    effect: float | None
    """Exact change in logit diff when ablated (None if not run)."""
    activation: float
    """Summed activation over the kept positions."""
    evidence: FeatureEvidence

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "estimate": round(self.estimate, 4),
                "effect": None if self.effect is None else round(self.effect, 4),
                "activation": round(self.activation, 4), "evidence": self.evidence.to_json()}


@dataclass(frozen=True)
class AttributionResult:
    clean_logit_diff: float
    target_id: int
    foil_id: int
    features: tuple[Attribution, ...]

    def to_json(self) -> dict[str, Any]:
        return {"clean_logit_diff": round(self.clean_logit_diff, 4), "target_id": self.target_id,
                "foil_id": self.foil_id, "features": [a.to_json() for a in self.features]}


def single_token(tokenizer: Any, text: str) -> int:
    """The token id of ``text`` (its first token if it splits; callers warn)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"{text!r} encodes to no tokens")
    return int(ids[0])


def logit_diff(logits: Tensor, target: int, foil: int) -> Tensor:
    """[batch] ``logit[target] - logit[foil]`` at the last position."""
    last = logits[:, -1, :]
    return last[:, target] - last[:, foil]


def linear_estimates(model: Any, sae: Any, hook_name: str, tokens: Tensor, target: int, foil: int,
                     keep: Tensor) -> tuple[float, Tensor, Tensor]:
    """(clean logit diff, est [d_sae], summed activation [d_sae]) from one backward pass."""
    box: dict[str, Tensor] = {}

    def grab(x: Tensor, hook: Any = None) -> Tensor:  # noqa: ARG001 - TransformerLens signature
        leaf = x.detach().requires_grad_(True)
        box["x"] = leaf
        return leaf

    with torch.enable_grad():
        logits = run_with_hooks(model, tokens, fwd_hooks=[(hook_name, grab)])
        ld = logit_diff(logits, target, foil)[0]
        (grad,) = torch.autograd.grad(ld, box["x"])
    x = box["x"].detach()[0]
    g = grad[0].float()
    with torch.no_grad():
        z = torch.zeros(x.shape[0], int(sae.cfg.d_sae), device=x.device)
        if bool(keep.any()):
            z[keep] = sae.encode(x[keep]).float()
        gW = g @ sae.W_dec.detach().float().T  # [pos, d_sae]: g[p] . W_dec[f]
        est = -(z * gW).sum(0)
    return float(ld.detach()), est, z.sum(0)


@torch.no_grad()
def ablation_effect(model: Any, sae: Any, hook_name: str, tokens: Tensor, target: int, foil: int,
                    fid: int, special_ids: Iterable[int], clean: float) -> float:
    spec = FeatureIntervention.ablate([fid])
    logits = run_with_hooks(model, tokens, fwd_hooks=[(hook_name, intervention_hook(sae, spec, tokens, special_ids))])
    return float(logit_diff(logits, target, foil)[0]) - clean


def attribute(
    model: Any, sae: Any, hook_name: str, token_ids: Sequence[int], target: int, foil: int,
    features: Mapping[str, Any] | None = None, special_ids: Iterable[int] = (), candidates: int = 20,
    top: int = 10, exact: bool = True, sign: str = "target",
) -> AttributionResult:
    """Rank features by how much ablating them changes ``logit[target] - logit[foil]``.

    ``candidates`` features with the largest estimated effect (by ``sign``: ``target``
    = most negative, i.e. supports the target; ``foil`` = most positive; ``both`` = |est|)
    are ablated exactly; the ``top`` are returned sorted the same way by exact effect.
    """
    specials = frozenset(special_ids)
    tokens = torch.tensor([list(token_ids)], dtype=torch.long, device=model.cfg.device)
    keep = keep_mask(token_ids, specials).to(tokens.device)
    clean, est, act = linear_estimates(model, sae, hook_name, tokens, target, foil, keep)
    key = {"target": -est, "foil": est, "both": est.abs()}.get(sign)
    if key is None:
        raise ValueError(f"sign must be target, foil or both; got {sign!r}")
    active = act > 0
    key = torch.where(active, key, torch.full_like(key, float("-inf")))
    n_cand = min(candidates if exact else top, int(active.sum()))
    cand = torch.argsort(key, descending=True)[:n_cand].tolist()
    rows = []
    for f in cand:
        eff = ablation_effect(model, sae, hook_name, tokens, target, foil, f, specials, clean) if exact else None
        rows.append(Attribution(int(f), float(est[f]), eff, float(act[f]), feature_evidence(features, int(f))))
    if exact:
        sort_key = {"target": lambda a: a.effect, "foil": lambda a: -a.effect, "both": lambda a: -abs(a.effect)}[sign]
        rows.sort(key=sort_key)
    return AttributionResult(clean, target, foil, tuple(rows[:top]))
