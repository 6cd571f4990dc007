"""What every study needs: greedy generation with an intervention, next-token
distributions, perplexity on neutral text, and probe scores over a span.

Probe scores over a span are read as the run-time guard reads them (see
:class:`ProbeHead`): per-token probabilities, the probe's calibrated window, max over the
span's kept positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.interp.runtime import encode_prompt
from monitor.engine import SamplingParams, Tap
from monitor.engine.hooks import run_with_hooks
from monitor.guard.interventions import (
    FeatureIntervention,
    intervention_callback,
    intervention_hook,
)


@dataclass(frozen=True)
class Setup:
    """The loaded pieces a study runs on."""

    model: Any
    """HookedTransformer."""
    engine: Any
    """:class:`monitor.engine.Engine` over the same model."""
    sae: Any
    hook_name: str
    special_ids: frozenset[int]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.engine.tokenizer.decode(list(ids), skip_special_tokens=True))


@dataclass(frozen=True)
class Completion:
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    text: str


def generate(setup: Setup, prompt_ids: Sequence[int], spec: FeatureIntervention | None,
             max_tokens: int = 24) -> Completion:
    """Greedy continuation with ``spec`` applied at every new position (None: unchanged)."""
    params = SamplingParams(max_tokens=max_tokens)
    if spec is None or spec.is_noop:
        gen = setup.engine.generation(list(prompt_ids), params)
        list(gen)
    else:
        cb = intervention_callback(setup.sae, spec, setup.special_ids)
        with Tap(setup.model, setup.hook_name, cb) as tap:
            gen = setup.engine.generation(list(prompt_ids), params, taps=[tap])
            list(gen)
    ids = tuple(int(t) for t in gen.completion_ids)
    return Completion(tuple(prompt_ids), ids, setup.decode(ids))


def _hooks(setup: Setup, spec: FeatureIntervention | None, tokens: Tensor) -> list[tuple[str, Any]]:
    if spec is None or spec.is_noop:
        return []
    return [(setup.hook_name, intervention_hook(setup.sae, spec, tokens, setup.special_ids))]


@torch.no_grad()
def next_token_logprobs(setup: Setup, ids: Sequence[int], spec: FeatureIntervention | None) -> Tensor:
    """[vocab] log-probabilities of the next token after ``ids``."""
    tokens = torch.tensor([list(ids)], dtype=torch.long, device=setup.model.cfg.device)
    logits = run_with_hooks(setup.model, tokens, fwd_hooks=_hooks(setup, spec, tokens))
    return torch.log_softmax(logits[0, -1].float(), dim=-1)


def kl(p_log: Tensor, q_log: Tensor) -> float:
    """KL(p || q) from log-probabilities."""
    return float((p_log.exp() * (p_log - q_log)).sum())


@torch.no_grad()
def perplexity(setup: Setup, texts: Iterable[Sequence[int]], spec: FeatureIntervention | None) -> float:
    """Token-weighted perplexity over ``texts`` (predictions of tokens 2.. : the prediction
    made at the attention-sink position is left out)."""
    nll, n = 0.0, 0
    for ids in texts:
        if len(ids) < 3:
            continue
        tokens = torch.tensor([list(ids)], dtype=torch.long, device=setup.model.cfg.device)
        logits = run_with_hooks(setup.model, tokens, fwd_hooks=_hooks(setup, spec, tokens))
        logp = torch.log_softmax(logits[0, 1:-1].float(), dim=-1)
        target = tokens[0, 2:]
        nll -= float(logp.gather(-1, target[:, None]).sum())
        n += int(target.numel())
    if n == 0:
        raise ValueError("no neutral text long enough for perplexity")
    return math.exp(nll / n)


@dataclass(frozen=True)
class ProbeHead:
    """One probe as the run-time guard reads it: per-token ``s_t = sigmoid(f_t @ w + b)``
    over the SAE code (plus the SAE error term ``x - decode(z)`` for an ``saeerr`` probe,
    whose weights are ``d_sae + d_in`` long), or ``sigmoid(x_t @ w_resid + b)`` over the raw
    residual for a dense probe (``feature_basis: resid``), read through the probe's
    calibrated reading (``runtime_window`` in probes.json: a window of ``window`` tokens
    pooled by ``reduce``, maximised over the span, or taken once at the response's end;
    :mod:`classifiers.probes.readings`)."""

    name: str
    w: Tensor
    """[d_sae] or [d_sae + d_in] (zeros for a dense probe)."""
    b: float
    window: int = 1
    reduce: str = "max"
    at: str = "every_token"
    w_resid: Tensor | None = None
    """[d_in]: a dense probe's weights over the residual (None for an SAE probe)."""

    @classmethod
    def from_pack(cls, probes_dir: Any, name: str, d_sae: int) -> ProbeHead:
        from classifiers.probes.io import load_probes
        from classifiers.probes.runtime_eval import probe_reading

        ps = load_probes(probes_dir)
        rec = next((r for r in ps.probes if r.name == name), None)
        if rec is None:
            raise KeyError(f"no probe {name!r}; have {', '.join(r.name for r in ps.probes)}")
        w = torch.as_tensor(rec.weights, dtype=torch.float32)
        if w.numel() < d_sae:
            raise ValueError(f"probe {name!r} has {w.numel()} weights but the SAE has {d_sae} features")
        reading = probe_reading(dict(rec.extra))
        w_resid = None if rec.resid_weights is None else torch.as_tensor(rec.resid_weights, dtype=torch.float32)
        return cls(name, w, float(rec.bias), reading.window, reading.reduce, reading.at, w_resid)

    def token_scores(self, x: Tensor, z: Tensor, sae: Any) -> Tensor:
        """[pos] per-token probabilities from residual rows ``x`` and their codes ``z``."""
        if self.w_resid is not None:
            dense: Tensor = torch.sigmoid(x.float() @ self.w_resid.to(x.device) + self.b)
            return dense
        d_sae = z.shape[-1]
        w = self.w.to(z.device)
        logits = z @ w[:d_sae] + self.b
        if w.numel() > d_sae:
            err = x - sae.decode(z)
            logits = logits + err @ w[d_sae:]
        out: Tensor = torch.sigmoid(logits)
        return out

    def span_score(self, token_scores: Tensor) -> float:
        from classifiers.probes.readings import Reading, response_scores

        s = token_scores.detach().double().cpu().numpy()
        if s.size == 0:
            return 0.0
        import numpy as np

        return float(response_scores(s, np.asarray([0, s.size]), Reading(self.window, self.reduce, self.at))[0])


def probe_score(setup: Setup, head: ProbeHead, ids: Sequence[int], span_start: int,
                spec: FeatureIntervention | None = None) -> float:
    """The probe's score over positions ``span_start..`` of ``ids``. With ``spec`` the
    residual is read after the intervention (what a clamp does to the monitor's own view)."""
    tokens = torch.tensor([list(ids)], dtype=torch.long, device=setup.model.cfg.device)
    enc = encode_prompt(setup.model, setup.sae, setup.hook_name, ids, setup.special_ids, _hooks(setup, spec, tokens),
                        start=span_start)
    with torch.no_grad():
        return head.span_score(head.token_scores(enc.resid[enc.keep], enc.z[enc.keep], setup.sae))
