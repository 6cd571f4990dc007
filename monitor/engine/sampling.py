"""Sampling parameters and next-token choice (greedy, temperature, top-p, seed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    """Stop after this many generated tokens."""
    temperature: float = 0.0
    """0 means greedy (argmax); otherwise logits are divided by it before sampling."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability sums to top_p."""
    seed: int | None = None
    """Seed for sampling; the same seed and prompt give the same tokens."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be in [0, 5], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def make_generator(self, device: torch.device) -> torch.Generator | None:
        if self.greedy:
            return None
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed if self.seed is not None else int(torch.seed() % (2**63)))
        return gen


#: Below this temperature, scaling raw logits can overflow float32.
_TINY_TEMPERATURE = 1e-20


def choose_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """``logits`` [batch, vocab] -> next token ids [batch]."""
    if params.greedy:
        return logits.argmax(dim=-1)
    logits, t = logits.float(), params.temperature
    if t < _TINY_TEMPERATURE:
        # logits / t would overflow float32 (t = 1e-300 even rounds to 0): inf - inf is NaN
        # in softmax. Shifted so the top logit is 0, the rest go to -inf: (near-)greedy.
        logits = logits - logits.max(dim=-1, keepdim=True).values
        t = max(t, torch.finfo(torch.float32).tiny)
    scaled = logits / t
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
        # keep tokens whose preceding cumulative mass is < top_p, and always the first: a
        # top_p below float32's smallest value (1e-300) compares as 0 and would keep none
        keep = (cum - sorted_p) < params.top_p
        keep[..., 0] = True
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter_(-1, sorted_idx, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
