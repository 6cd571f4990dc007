"""Feature search on the toy model: attribution recovers the planted feature (linear
estimate and exact ablation agree), neighbours start with the feature itself, example and
contrastive search rank a feature planted on the concept prompts first."""

import pytest
import torch

from classifiers.interp.attribution import attribute, logit_diff
from classifiers.interp.neighbours import cluster_by_decoder, neighbours
from classifiers.interp.runtime import encode_prompts
from classifiers.interp.search_contrastive import search_contrastive
from classifiers.interp.search_examples import search_by_examples
from tests.unit.interp.toys import (
    BASE,
    FOIL,
    HOOK,
    PLANTED,
    PROMPT,
    SPECIALS,
    TARGET,
    TWIN,
    model,
    toy_sae,
)

FEATURES = {"features": {str(f): {"density": 0.3, "label": "", "top_contexts": []} for f in range(16)}}
FEATURES["features"][str(PLANTED)] = {"density": 0.9, "label": "planted", "top_contexts": [
    {"activation": 3.0, "token": "x", "text": "a «x» b"}]}
FEATURES["features"]["2"] = {"density": 0.001, "label": "", "top_contexts": []}


@pytest.fixture(scope="module")
def toy():
    m = model()
    return m, toy_sae(m)


def test_attribution_recovers_the_planted_feature(toy):
    m, sae = toy
    res = attribute(m, sae, HOOK, PROMPT, TARGET, FOIL, FEATURES, SPECIALS, candidates=16, top=5)
    first = res.features[0]
    assert first.id == PLANTED
    assert first.evidence.label == "planted" and first.evidence.top_context == "a «x» b"
    # ablating it lowers the target-vs-foil difference a lot, more than any other feature
    assert first.effect < -0.3
    assert all(abs(a.effect) < abs(first.effect) for a in res.features[1:])
    # the linear estimate ranks it first too and has the right sign
    by_est = sorted(res.features, key=lambda a: a.estimate)
    assert by_est[0].id == PLANTED and first.estimate < 0
    # the exact effect is what a manual ablation gives
    tokens = torch.tensor([PROMPT])
    with torch.no_grad():
        clean = float(logit_diff(m(tokens), TARGET, FOIL)[0])
        z = sae.encode(m.run_with_cache(tokens, names_filter=[HOOK])[1][HOOK][0])

        def manual(x, hook=None):
            x = x.clone()
            x[0, 1:] -= z[1:, PLANTED, None] * sae.W_dec[PLANTED]
            return x

        ablated = float(logit_diff(m.run_with_hooks(tokens, fwd_hooks=[(HOOK, manual)]), TARGET, FOIL)[0])
    assert res.clean_logit_diff == pytest.approx(clean, abs=1e-4)
    assert first.effect == pytest.approx(ablated - clean, abs=1e-4)


def test_attribution_estimate_only(toy):
    m, sae = toy
    res = attribute(m, sae, HOOK, PROMPT, TARGET, FOIL, None, SPECIALS, top=3, exact=False)
    assert res.features[0].id == PLANTED and res.features[0].effect is None


def test_neighbours_start_with_the_feature_itself(toy):
    _, sae = toy
    for fid in (BASE, PLANTED, 0):
        nb = neighbours(sae.W_dec, fid, None, k=5)
        assert nb[0].id == fid and nb[0].cosine == pytest.approx(1.0)
        assert len(nb) == 5 and len({n.id for n in nb}) == 5
    nb = neighbours(sae.W_dec, BASE, None, k=3)
    assert nb[1].id == TWIN and nb[1].cosine == pytest.approx(1.0, abs=1e-5)
    assert [BASE, TWIN] in [sorted(c) for c in cluster_by_decoder(sae.W_dec, [BASE, TWIN, PLANTED], 0.9)]
    with pytest.raises(ValueError, match="out of range"):
        neighbours(sae.W_dec, 99)


def test_example_and_contrastive_search_find_a_concept_feature(toy):
    m, sae = toy
    # plant: feature 2 fires only where token 20 appears ("concept" prompts contain it)
    sae2 = toy_sae(m)
    concept = [[3, 4, 20, 5, 6], [7, 20, 8, 9], [10, 11, 12, 20]]
    neutral = [[3, 4, 13, 5, 6], [7, 14, 8, 9], [10, 11, 12, 15]]
    # at blocks.0.hook_resid_pre the residual is the token embedding (rotary: no position term)
    hook = "blocks.0.hook_resid_pre"
    e20 = m.embed.W_E[20]
    with torch.no_grad():
        sae2.W_enc[:, 2] = e20 / e20.norm() ** 2 * 4.0  # 4 - 3 = 1 at token 20
        sae2.b_enc[2] = -3.0
    enc_c = encode_prompts(m, sae2, hook, concept, SPECIALS)
    enc_n = encode_prompts(m, sae2, hook, neutral, SPECIALS)
    assert all(float(e.z[list(e.token_ids).index(20), 2]) == pytest.approx(1.0, abs=1e-4) for e in enc_c)
    hits = search_by_examples(enc_c, FEATURES, top=5, baseline=enc_n)
    assert hits[0].id == 2 and hits[0].lift > 10
    # the planted always-on feature (density 0.9, as active on neutral text) is not on top
    assert PLANTED not in [h.id for h in hits[:1]]
    con = search_contrastive(enc_c, enc_n, FEATURES, decode=str, top=5)
    assert con[0].id == 2 and con[0].delta > 0
    # the positions where it is largest are the token-20 positions
    for p in con[0].positions:
        assert concept[p.prompt][p.position] == 20
