"""The interpretability toolkit on the real SmolLM2 with the guard pack's SAE (slow).

Skips when the pack has no SAE yet; ``SAEGUARD_TEST_SAE=<dir>`` points the tests at
another SAELens directory at the same hook (e.g. an interim training run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PACK = Path(__file__).resolve().parents[3] / "classifiers" / "packs" / "smollm2-135m-instruct"
JOHN = 'John says, "I want to be alone right now." John feels'

pytestmark = pytest.mark.slow


def _sae_dir() -> Path | None:
    env = os.environ.get("SAEGUARD_TEST_SAE")
    if env:
        return Path(env)
    return PACK / "sae" if (PACK / "sae" / "cfg.json").is_file() else None


@pytest.fixture(scope="module")
def setup(loaded_model, engine):
    """The session's model and engine (tests/integration/conftest.py) + the pack's SAE."""
    sae_dir = _sae_dir()
    if sae_dir is None:
        pytest.skip(f"no SAE yet: {PACK}/sae/cfg.json is missing (set SAEGUARD_TEST_SAE to use another SAE dir)")
    from classifiers.interp.runtime import special_ids_of
    from classifiers.interp.studies.common import Setup
    from monitor.sae_spec import load_sae

    sae = load_sae(str(sae_dir))
    return Setup(loaded_model.model, engine, sae, str(sae.cfg.metadata.hook_name), special_ids_of(loaded_model.tokenizer))


def test_attribution_on_john_feels(setup):
    from classifiers.interp.attribution import attribute, logit_diff, single_token
    from monitor.guard.interventions import FeatureIntervention, intervention_hook

    tok = setup.engine.tokenizer
    ids = list(tok(JOHN, add_special_tokens=False)["input_ids"])
    sad, happy = single_token(tok, " sad"), single_token(tok, " happy")
    res = attribute(setup.model, setup.sae, setup.hook_name, ids, sad, happy, None, setup.special_ids,
                    candidates=3, top=2)
    assert res.clean_logit_diff > 0  # the model prefers " sad"
    top = res.features[0]
    assert top.effect < 0 and top.estimate < 0  # ablating it moves the model away from " sad"
    tokens = torch.tensor([ids])
    hook = intervention_hook(setup.sae, FeatureIntervention.ablate([top.id]), tokens, setup.special_ids)
    with torch.no_grad():
        ablated = float(logit_diff(setup.model.run_with_hooks(tokens, fwd_hooks=[(setup.hook_name, hook)]), sad, happy)[0])
    assert ablated - res.clean_logit_diff == pytest.approx(top.effect, abs=1e-3)


def test_interventions_in_streaming_generation(setup):
    from classifiers.interp.runtime import encode_prompt
    from classifiers.interp.studies.common import generate
    from monitor.guard.interventions import FeatureIntervention

    ids = setup.engine.render([{"role": "user", "content": "Name a fruit."}])
    base = generate(setup, ids, None, max_tokens=5)
    enc = encode_prompt(setup.model, setup.sae, setup.hook_name, ids, setup.special_ids)
    dead = int(torch.nonzero(enc.z.sum(0) == 0)[0])
    # ablating a feature that never fires on the prompt changes nothing at the prompt; the
    # greedy text stays the same unless it starts firing on generated tokens
    same = generate(setup, ids, FeatureIntervention.ablate([dead]), max_tokens=5)
    assert same.completion_ids[:1] == base.completion_ids[:1]
    loud = int(enc.z.sum(0).argmax())
    steered = generate(setup, ids, FeatureIntervention.steer_feature(loud, 40.0 * float(enc.z[:, loud].max())), 5)
    assert steered.completion_ids != base.completion_ids


def test_logit_lens_and_patching(setup):
    from classifiers.interp.attribution import single_token
    from classifiers.interp.logit_lens import logit_lens
    from classifiers.interp.patching import activation_patching

    tok = setup.engine.tokenizer
    ids = list(tok(JOHN, add_special_tokens=False)["input_ids"])
    decode = lambda t: tok.decode([t])  # noqa: E731
    res = logit_lens(setup.model, ids, decode, k=3, targets=[single_token(tok, " sad")])
    with torch.no_grad():
        top = int(setup.model(torch.tensor([ids]))[0, -1].argmax())
    assert res.layers[-1].top[0][0] == decode(top)
    corrupted = list(tok(JOHN.replace("alone", "happy"), add_special_tokens=False)["input_ids"])
    if len(corrupted) != len(ids):
        pytest.skip("corrupted prompt tokenizes to another length")
    last = setup.model.cfg.n_layers - 1
    p = activation_patching(setup.model, ids, corrupted, single_token(tok, " sad"), single_token(tok, " happy"),
                            layers=[0, last], kind="resid_post")
    assert float(p.recovered[1, -1]) == pytest.approx(1.0, abs=1e-3)
