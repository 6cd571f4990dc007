"""The shared intervention API (monitor.guard.interventions) on the toy model: clamps to
the current value change nothing, ablation removes exactly z[f] * W_dec[f], steering adds
exactly strength * W_dec[f]; position 0 and special tokens are never touched."""

import pytest
import torch

from monitor.engine import Engine, SamplingParams, Tap
from monitor.guard.interventions import (
    FeatureIntervention,
    intervention_callback,
    intervention_hook,
)
from tests.toymodel import ToyTokenizer
from tests.unit.interp.toys import HOOK, PLANTED, PLANTED_Z, PROMPT, SPECIALS, model, toy_sae

PROMPT_WITH_SPECIAL = [3, 7, 1, 9, 4, 12, 6]  # id 1 is special


@pytest.fixture(scope="module")
def toy():
    m = model()
    return m, toy_sae(m)


def run_captured(m, sae, spec, tokens):
    """Residual at HOOK after the intervention, and the logits."""
    box = {}

    def capture(x, hook=None):
        box["x"] = x.detach().clone()
        return x

    hooks = [(HOOK, intervention_hook(sae, spec, tokens, SPECIALS))] if spec else []
    with torch.no_grad():
        logits = m.run_with_hooks(tokens, fwd_hooks=hooks + [(HOOK, capture)])
    return box["x"][0], logits


def test_clamp_to_current_value_changes_nothing(toy):
    m, sae = toy
    tokens = torch.tensor([PROMPT_WITH_SPECIAL])
    x0, l0 = run_captured(m, sae, None, tokens)
    z = sae.encode(x0)
    assert torch.allclose(z[:, PLANTED], torch.full((len(PROMPT),), PLANTED_Z))
    x1, l1 = run_captured(m, sae, FeatureIntervention.clamp([PLANTED], PLANTED_Z), tokens)
    torch.testing.assert_close(x1, x0, atol=1e-6, rtol=0)
    torch.testing.assert_close(l1, l0, atol=1e-5, rtol=0)
    # per-row: every feature clamped to its own current value
    idx = list(range(z.shape[1]))
    spec = FeatureIntervention.clamp(idx, z[3].tolist())
    torch.testing.assert_close(spec.apply_rows(x0[3], z[3], sae.W_dec), x0[3], atol=1e-5, rtol=0)


def test_clamp_to_current_value_leaves_generation_identical(toy):
    m, sae = toy
    engine = Engine(m, ToyTokenizer())
    base = engine.generation(PROMPT, SamplingParams(max_tokens=8))
    list(base)
    spec = FeatureIntervention.clamp([PLANTED], PLANTED_Z)
    with Tap(m, HOOK, intervention_callback(sae, spec, SPECIALS)) as tap:
        gen = engine.generation(PROMPT, SamplingParams(max_tokens=8), taps=[tap])
        list(gen)
    assert gen.completion_ids == base.completion_ids


def test_ablation_removes_exactly_the_features_contribution(toy):
    m, sae = toy
    tokens = torch.tensor([PROMPT_WITH_SPECIAL])
    x0, _ = run_captured(m, sae, None, tokens)
    z = sae.encode(x0)
    f = int(z[2].argmax())
    x1, _ = run_captured(m, sae, FeatureIntervention.ablate([f]), tokens)
    touched = [p for p, t in enumerate(PROMPT_WITH_SPECIAL) if p != 0 and t not in SPECIALS]
    for p in range(len(PROMPT_WITH_SPECIAL)):
        expected = x0[p] - z[p, f] * sae.W_dec[f] if p in touched else x0[p]
        torch.testing.assert_close(x1[p], expected, atol=1e-6, rtol=0)
    # and equals decode(z with f = 0) + the SAE error: the error term is preserved
    z_abl = z.clone()
    z_abl[:, f] = 0
    recon = sae.decode(z_abl) + (x0 - sae.decode(z))
    torch.testing.assert_close(x1[touched], recon[touched], atol=1e-5, rtol=0)
    # re-encoding the ablated residual does not bring the feature back: its activation
    # does not rise (to fp32 rounding; the toy SAE's decoder rows are not orthogonal, so
    # other features can re-explain part of it and the drop may be tiny)
    assert float(sae.encode(x1[2:3])[0, f]) <= float(z[2, f]) + 1e-5 * max(1.0, abs(float(z[2, f])))


@pytest.mark.parametrize("strength", [0.5, -4.0, 25.0])
def test_steering_adds_exactly_strength_times_decoder_row(toy, strength):
    m, sae = toy
    tokens = torch.tensor([PROMPT_WITH_SPECIAL])
    x0, l0 = run_captured(m, sae, None, tokens)
    x1, l1 = run_captured(m, sae, FeatureIntervention.steer_feature(4, strength), tokens)
    delta = x1 - x0
    for p, t in enumerate(PROMPT_WITH_SPECIAL):
        if p == 0 or t in SPECIALS:
            # untouched positions: the same inputs through the same kernels in both runs
            torch.testing.assert_close(delta[p], torch.zeros(8), atol=1e-6, rtol=0)
        else:
            torch.testing.assert_close(delta[p], strength * sae.W_dec[4], atol=1e-6, rtol=0)
    assert not torch.allclose(l1, l0)


def test_steer_by_any_direction_and_generation_changes(toy):
    m, sae = toy
    direction = torch.zeros(8)
    direction[2] = 1.0
    tokens = torch.tensor([PROMPT])
    x0, _ = run_captured(m, sae, None, tokens)
    x1, _ = run_captured(m, sae, FeatureIntervention.steer_direction(direction, 3.0), tokens)
    torch.testing.assert_close((x1 - x0)[1:], 3.0 * direction.expand(len(PROMPT) - 1, 8), atol=1e-6, rtol=0)
    engine = Engine(m, ToyTokenizer())
    base = engine.generation(PROMPT, SamplingParams(max_tokens=8))
    list(base)
    spec = FeatureIntervention.steer_feature(PLANTED, 40.0)
    with Tap(m, HOOK, intervention_callback(sae, spec, SPECIALS)) as tap:
        gen = engine.generation(PROMPT, SamplingParams(max_tokens=8), taps=[tap])
        list(gen)
    assert gen.completion_ids != base.completion_ids


def test_spec_validation():
    with pytest.raises(ValueError, match="clamped twice"):
        FeatureIntervention(clamps=((1, 0.0), (1, 2.0)))
    with pytest.raises(ValueError, match="2 values"):
        FeatureIntervention.clamp([1], [1.0, 2.0])
    assert FeatureIntervention().is_noop
    assert FeatureIntervention.ablate([3, 4]).describe() == "clamp:3=0,clamp:4=0"
