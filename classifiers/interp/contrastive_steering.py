"""Contrastive steering from sparse SAE features, compared with plain contrastive
activation addition (CAA) in the same run.

1. For each (positive, negative) prompt pair, the kept positions (not 0, not special) are
   right-aligned and the residual delta ``dx = x_pos - x_neg`` is taken position by
   position; the ``positions`` with the largest ``||dx||`` are the important ones.
   The SAE code deltas ``dz`` are taken at the same positions.
2. Sparse selection: the ``k`` features with the largest ``|mean dz|``, grouped into
   clusters by decoder cosine (reported, to see which selected features say the same thing).
3. Fits of a vector in the span of their decoder directions:
   - ``lstsq``: coefficients ``c`` minimising ``sum_n ||dx_n - c @ W_dec[S]||^2`` (i.e. the
     best fit to the mean delta within the span);
   - ``logistic``: a logistic regression separating positive from negative codes on the
     selected features; direction ``w @ W_dec[S]``, scaled to the mean delta's projection
     on it so strength 1 is comparable with the other methods.
4. ``caa``: the mean delta itself.
Each vector is added (``strength x v``, for each of the given strengths) at every kept position while generating from the
evaluation prompts; the result reports the probe score shift (if a probe is given), the
shift of the residual's projection on the CAA direction (a probe-free proxy), neutral
perplexity, and a sample continuation per method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.interp.neighbours import cluster_by_decoder
from classifiers.interp.runtime import encode_prompt
from classifiers.interp.studies.common import ProbeHead, Setup, generate, perplexity, probe_score
from monitor.guard.interventions import FeatureIntervention


@dataclass(frozen=True)
class ContrastiveData:
    dx: Tensor
    """[n, d_model] residual deltas at the important positions of every pair."""
    dz: Tensor
    """[n, d_sae] SAE code deltas at the same positions."""
    z_pos: Tensor
    z_neg: Tensor
    """[n, d_sae] the codes themselves (for the logistic fit)."""


def collect(setup: Setup, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], positions: int = 3) -> ContrastiveData:
    dxs, dzs, zps, zns = [], [], [], []
    for pos_ids, neg_ids in pairs:
        ep = encode_prompt(setup.model, setup.sae, setup.hook_name, pos_ids, setup.special_ids)
        en = encode_prompt(setup.model, setup.sae, setup.hook_name, neg_ids, setup.special_ids)
        ip, in_ = ep.keep.nonzero().flatten(), en.keep.nonzero().flatten()
        n = min(len(ip), len(in_))
        if n == 0:
            continue
        ip, in_ = ip[-n:], in_[-n:]
        dx = ep.resid[ip] - en.resid[in_]
        top = torch.argsort(dx.norm(dim=1), descending=True)[:positions]
        dxs.append(dx[top])
        dzs.append(ep.z[ip][top] - en.z[in_][top])
        zps.append(ep.z[ip][top])
        zns.append(en.z[in_][top])
    if not dxs:
        raise ValueError("no usable pairs (every prompt was empty after skipping special tokens)")
    return ContrastiveData(torch.cat(dxs), torch.cat(dzs), torch.cat(zps), torch.cat(zns))


def select_features(dz: Tensor, k: int) -> list[int]:
    score = dz.mean(0).abs()
    return [int(f) for f in torch.argsort(score, descending=True)[:k].tolist() if float(score[f]) > 0]


def fit_lstsq(dx: Tensor, W_sel: Tensor) -> Tensor:
    """Coefficients [k] with ``c @ W_sel`` closest to every row of ``dx`` (= to their mean)."""
    sol = torch.linalg.lstsq(W_sel.T.double(), dx.mean(0).double()[:, None]).solution
    coef: Tensor = sol[:, 0].float()
    return coef


def fit_logistic(z_pos: Tensor, z_neg: Tensor, ids: Sequence[int], W_sel: Tensor, mean_dx: Tensor,
                 C: float = 1.0) -> Tensor:
    from sklearn.linear_model import LogisticRegression

    X = torch.cat([z_pos[:, ids], z_neg[:, ids]]).double().numpy()
    y = [1] * z_pos.shape[0] + [0] * z_neg.shape[0]
    clf = LogisticRegression(C=C, max_iter=1000).fit(X, y)
    v = torch.as_tensor(clf.coef_[0], dtype=torch.float32) @ W_sel
    u = v / v.norm().clamp_min(1e-12)
    scaled: Tensor = u * float(mean_dx @ u)
    return scaled


@dataclass(frozen=True)
class MethodResult:
    name: str
    strength: float
    norm: float
    cosine_to_caa: float
    probe_shift: float | None
    projection_shift: float
    neutral_ppl: float
    sample: str

    def to_json(self) -> dict[str, Any]:
        return {"method": self.name, "strength": self.strength, "norm": round(self.norm, 4), "cosine_to_caa": round(self.cosine_to_caa, 4),
                "probe_shift": None if self.probe_shift is None else round(self.probe_shift, 4),
                "projection_shift": round(self.projection_shift, 4), "neutral_ppl": round(self.neutral_ppl, 4),
                "sample": self.sample}


@dataclass(frozen=True)
class ContrastiveSteeringResult:
    features: tuple[int, ...]
    clusters: tuple[tuple[int, ...], ...]
    lstsq_coefficients: tuple[float, ...]
    lstsq_explained: float
    """1 - ||mean_dx - v_lstsq||^2 / ||mean_dx||^2: how much of the CAA vector the features span."""
    strengths: tuple[float, ...]
    base_neutral_ppl: float
    base_sample: str
    methods: tuple[MethodResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "clusters": [list(c) for c in self.clusters],
                "lstsq_coefficients": [round(c, 4) for c in self.lstsq_coefficients],
                "lstsq_explained": round(self.lstsq_explained, 4), "strengths": list(self.strengths),
                "base_neutral_ppl": round(self.base_neutral_ppl, 4), "base_sample": self.base_sample,
                "methods": [m.to_json() for m in self.methods]}


def _projection(setup: Setup, ids: Sequence[int], start: int, u: Tensor) -> float:
    enc = encode_prompt(setup.model, setup.sae, setup.hook_name, ids, setup.special_ids)
    keep = enc.keep.clone()
    keep[:start] = False
    return float((enc.resid[keep] @ u).mean()) if bool(keep.any()) else 0.0


def _evaluate(setup: Setup, spec: FeatureIntervention | None, prompts: Sequence[Sequence[int]], u: Tensor,
              head: ProbeHead | None, max_tokens: int) -> tuple[float | None, float, str]:
    probe: list[float] = []
    proj: list[float] = []
    sample = ""
    for i, ids in enumerate(prompts):
        c = generate(setup, ids, spec, max_tokens)
        full = list(ids) + list(c.completion_ids)
        if i == 0:
            sample = c.text
        if len(full) > len(ids):
            proj.append(_projection(setup, full, len(ids), u))
            if head is not None:
                probe.append(probe_score(setup, head, full, len(ids)))
    return (_mean(probe) if head is not None else None), _mean(proj), sample


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / max(len(xs), 1)


def contrastive_steering(
    setup: Setup, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], eval_prompts: Sequence[Sequence[int]],
    neutral: Sequence[Sequence[int]], k: int = 8, positions: int = 3, strengths: Sequence[float] = (1.0,),
    head: ProbeHead | None = None, max_tokens: int = 20, methods: Sequence[str] = ("caa", "lstsq", "logistic"),
) -> ContrastiveSteeringResult:
    data = collect(setup, pairs, positions)
    W = setup.sae.W_dec.detach().float()
    ids = select_features(data.dz, k)
    if not ids:
        raise ValueError("no feature differs between the positive and negative prompts")
    W_sel = W[ids]
    mean_dx = data.dx.mean(0)
    coef = fit_lstsq(data.dx, W_sel)
    v_ls = coef @ W_sel
    vectors: dict[str, Tensor] = {"caa": mean_dx, "lstsq": v_ls}
    if "logistic" in methods:
        vectors["logistic"] = fit_logistic(data.z_pos, data.z_neg, ids, W_sel, mean_dx)
    u = mean_dx / mean_dx.norm().clamp_min(1e-12)
    base_probe, base_proj, base_sample = _evaluate(setup, None, eval_prompts, u, head, max_tokens)
    base_ppl = perplexity(setup, neutral, None)
    results = []
    for strength in strengths:
        for name in methods:
            v = vectors[name]
            spec = FeatureIntervention.steer_direction(v, strength)
            probe, proj, sample = _evaluate(setup, spec, eval_prompts, u, head, max_tokens)
            cos = float(v @ mean_dx / (v.norm() * mean_dx.norm()).clamp_min(1e-12))
            results.append(MethodResult(name, float(strength), float(v.norm()), cos,
                                        None if probe is None or base_probe is None else probe - base_probe,
                                        proj - base_proj, perplexity(setup, neutral, spec), sample))
    explained = 1.0 - float((mean_dx - v_ls).pow(2).sum() / mean_dx.pow(2).sum().clamp_min(1e-12))
    clusters = tuple(tuple(c) for c in cluster_by_decoder(W, ids))
    return ContrastiveSteeringResult(tuple(ids), clusters, tuple(float(c) for c in coef), explained,
                                     tuple(float(s) for s in strengths),
                                     base_ppl, base_sample, tuple(results))
