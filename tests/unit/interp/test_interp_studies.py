"""Studies and diagnostics on the toy model: patching the final residual at the last
position recovers everything, the logit lens at the last layer is the model's own output,
sweeps/ablation/specificity/contrastive steering produce consistent numbers and PNGs."""

import pytest
import torch

from classifiers.interp import plots
from classifiers.interp.contrastive_steering import contrastive_steering
from classifiers.interp.logit_lens import logit_lens
from classifiers.interp.patching import activation_patching
from classifiers.interp.studies.ablation import ablation_study
from classifiers.interp.studies.common import ProbeHead, Setup, perplexity
from classifiers.interp.studies.specificity import specificity
from classifiers.interp.studies.sweep import sweep
from monitor.engine import Engine
from monitor.guard.interventions import FeatureIntervention
from tests.toymodel import ToyTokenizer
from tests.unit.interp.toys import (
    FOIL,
    HOOK,
    PLANTED,
    PLANTED_Z,
    PROMPT,
    SPECIALS,
    TARGET,
    model,
    toy_sae,
)


@pytest.fixture(scope="module")
def setup():
    m = model()
    return Setup(m, Engine(m, ToyTokenizer()), toy_sae(m), HOOK, frozenset(SPECIALS))


def test_patching_final_residual_at_last_position_recovers_fully(setup):
    clean = PROMPT
    corrupted = PROMPT[:-1] + [15]
    res = activation_patching(setup.model, clean, corrupted, TARGET, FOIL, kind="resid_post")
    assert res.recovered.shape == (2, len(PROMPT))
    assert float(res.recovered[1, -1]) == pytest.approx(1.0, abs=1e-4)
    # positions before the last one cannot matter once the last layer is done
    assert torch.allclose(res.recovered[1, :-1], torch.zeros(len(PROMPT) - 1), atol=1e-4)
    # identical tokens at a position: patching it there at resid_pre of layer 0 changes nothing
    pre = activation_patching(setup.model, clean, corrupted, TARGET, FOIL, kind="resid_pre")
    assert torch.allclose(pre.recovered[0, :-1], torch.zeros(len(PROMPT) - 1), atol=1e-4)
    assert float(pre.recovered[0, -1]) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="same length"):
        activation_patching(setup.model, clean, clean[:-1], TARGET, FOIL)


def test_logit_lens_last_layer_is_the_model_output(setup):
    m = setup.model
    res = logit_lens(m, PROMPT, str, k=3, targets=[TARGET, FOIL], direction=setup.sae.W_dec[PLANTED])
    with torch.no_grad():
        probs = torch.softmax(m(torch.tensor([PROMPT]))[0, -1], -1)
    last = res.layers[-1]
    assert last.layer == "1" and len(res.layers) == 3
    assert last.top[0][0] == str(int(probs.argmax()))
    assert last.target_probs[0] == pytest.approx(float(probs[TARGET]), abs=1e-5)
    # the planted direction points at TARGET minus FOIL: TARGET is among the tokens it promotes
    assert str(TARGET) in [t for t, _ in res.direction_tokens[:3]]


def test_sweep_clamp_at_current_value_has_zero_kl_and_png(setup, tmp_path):
    res = sweep(setup, PROMPT, PLANTED, [PLANTED_Z, 0.0, 50.0], max_tokens=6)
    rows = res.rows
    assert rows[0].value is None and rows[1].kl == pytest.approx(0.0, abs=1e-6)
    assert rows[1].text == rows[0].text
    assert rows[3].kl > rows[2].kl > 0
    path = plots.sweep_png(tmp_path / "s.png", PLANTED, [r.value for r in rows], [r.kl for r in rows],
                           [r.text for r in rows], "toy")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_ablation_study_of_planted_feature(setup):
    res = ablation_study(setup, [("a", PROMPT), ("b", [4, 5, 6, 7, 8])], [PLANTED], max_tokens=6)
    assert len(res.rows) == 2 and all(r.kl > 0 for r in res.rows)
    assert res.to_json()["features"] == [PLANTED]


def test_specificity_with_a_toy_probe(setup):
    # feature PLANTED reads its own decoder direction, so after ablating it (x - z W_dec[f])
    # a re-encode gives exactly 0; a probe reading only that feature then sees nothing in place
    sae = toy_sae(setup.model)
    with torch.no_grad():
        sae.W_enc[:, PLANTED] = sae.W_dec[PLANTED]
        sae.b_enc[PLANTED] = 0.0
    s2 = Setup(setup.model, setup.engine, sae, HOOK, setup.special_ids)
    w = torch.zeros(16)
    w[PLANTED] = 2.0
    head = ProbeHead("toy", w, -3.0, window=1, reduce="max")
    spec = FeatureIntervention.ablate([PLANTED])
    res = specificity(s2, head, spec, [("a", PROMPT)], [[3, 4, 5, 6, 7, 8, 9]], max_tokens=5)
    row = res.rows[0]
    assert row.score_in_place == pytest.approx(float(torch.sigmoid(torch.tensor(-3.0))), abs=1e-4)
    assert row.base_score > row.score_in_place
    assert 0 < res.score_drop_in_place <= 1
    assert res.neutral_ppl_base == pytest.approx(perplexity(s2, [[3, 4, 5, 6, 7, 8, 9]], None))
    assert set(res.to_json()) >= {"score_drop", "neutral_ppl_increase", "score_drop_in_place"}


def test_contrastive_steering_compares_three_methods(setup, tmp_path):
    pairs = [([3, 4, 20, 5, 6], [3, 4, 21, 5, 6]), ([7, 20, 8, 9], [7, 21, 8, 9]), ([10, 11, 20], [10, 11, 21])]
    res = contrastive_steering(setup, pairs, [p for _, p in pairs], [[3, 4, 5, 6, 7, 8]], k=6, positions=2,
                               strengths=(0.5, 2.0), max_tokens=4)
    names = [(m.name, m.strength) for m in res.methods]
    assert names == [("caa", 0.5), ("lstsq", 0.5), ("logistic", 0.5), ("caa", 2.0), ("lstsq", 2.0), ("logistic", 2.0)]
    caa = res.methods[0]
    assert caa.cosine_to_caa == pytest.approx(1.0, abs=1e-5)
    assert -1e-6 <= res.lstsq_explained <= 1.0 + 1e-6
    assert len(res.features) == 6 and sorted(f for c in res.clusters for f in c) == sorted(res.features)
    # 6 decoder directions in d_model 8 span most of the mean delta
    assert res.lstsq_explained > 0.3
    plots.compare_bars_png(tmp_path / "c.png", "t", {"ppl": {m.name: m.neutral_ppl for m in res.methods}})
    assert (tmp_path / "c.png").is_file()


def test_patching_with_a_probe_metric(setup):
    from classifiers.interp.patching import probe_metric

    torch.manual_seed(3)
    w = torch.randn(16)
    clean, corrupted = PROMPT, PROMPT[:-1] + [15]
    metric = probe_metric(setup.model, setup.sae, HOOK, w, 0.5)
    res = activation_patching(setup.model, clean, corrupted, kind="resid_post", metric=metric)
    assert res.clean != pytest.approx(res.corrupted)
    # the probe reads the hook's residual at the last position: restoring exactly that recovers all
    assert float(res.recovered[1, -1]) == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(res.recovered[1, :-1], torch.zeros(len(PROMPT) - 1), atol=1e-4)
