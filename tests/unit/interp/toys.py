"""Toy model + toy SAELens SAE with a planted feature, for the interp unit tests.

Feature ``PLANTED`` fires with the constant value ``PLANTED_Z`` at every position
(zero encoder column, positive bias) and its decoder direction points along
``W_U[:, TARGET] - W_U[:, FOIL]``: it drives the target-vs-foil logit difference.
Feature ``TWIN`` has the same decoder direction as ``BASE`` (scaled), so it is BASE's
nearest neighbour.
"""

from __future__ import annotations

import torch
from sae_lens import StandardSAE, StandardSAEConfig

from tests.toymodel import toy_model

HOOK = "blocks.1.hook_resid_post"
D_SAE = 16
PLANTED, PLANTED_Z = 5, 3.0
TARGET, FOIL = 7, 9
BASE, TWIN = 3, 11
PROMPT = [3, 7, 2, 9, 4, 12, 6]
SPECIALS = (0, 1)


def model():
    return toy_model()


def toy_sae(model) -> StandardSAE:
    torch.manual_seed(1)
    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=D_SAE, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(8, D_SAE) * 0.3)
        sae.b_enc.zero_()
        sae.W_dec.copy_(torch.randn(D_SAE, 8) * 0.2)
        sae.b_dec.zero_()
        sae.W_enc[:, PLANTED] = 0.0
        sae.b_enc[PLANTED] = PLANTED_Z
        u = model.unembed.W_U[:, TARGET] - model.unembed.W_U[:, FOIL]
        sae.W_dec[PLANTED] = u / u.norm()
        sae.W_dec[TWIN] = 2.0 * sae.W_dec[BASE]
    for p in sae.parameters():
        p.requires_grad_(False)
    return sae
