"""Probe-side helpers: features from a probe's weights, the run-time reading of a probe over
a span (window, error term), concept-eliciting prompts from the shared datasets."""

import numpy as np
import pytest
import torch

from classifiers.interp.from_probe import probe_features, top_feature_ids
from classifiers.interp.studies.common import ProbeHead
from classifiers.probes.io import ProbeRecord, load_probes, save_probes
from tests.unit.interp.toys import model, toy_sae

FEATURES = {"features": {"4": {"density": 0.02, "label": "four", "top_contexts": [{"activation": 1.0, "text": "«4»"}]}}}


def record(extra=None):
    w = np.zeros(16, np.float32)
    w[[4, 7, 9]] = [2.0, 0.5, -3.0]
    return ProbeRecord("dec", "deception", "max", w, -1.0, {"0.01": 0.9}, [(7, 0.8), (4, 0.6)], extra=extra or {})


def test_probe_features_by_contribution_weight_and_abs():
    rec = record()
    assert [f.id for f in probe_features(rec, FEATURES, top=5)] == [7, 4]
    by_w = probe_features(rec, FEATURES, top=5, by="weight")
    assert [f.id for f in by_w] == [4, 7] and by_w[0].evidence.label == "four" and by_w[0].contribution == 0.6
    assert [f.id for f in probe_features(rec, None, top=1, by="abs")] == [9]
    assert top_feature_ids({"probes": {"dec": {"top_features": [[7, 0.8], [4, 0.6]]}}}, "dec", 1) == [7]
    with pytest.raises(KeyError, match="no probe"):
        top_feature_ids({"probes": {}}, "x", 1)


def test_probe_head_reads_the_runtime_window_and_the_error_term(tmp_path):
    save_probes(tmp_path, [record({"runtime_window": {"tokens": 2, "reduce": "mean"}})], "blocks.1.hook_resid_post")
    head = ProbeHead.from_pack(tmp_path, "dec", 16)
    assert (head.window, head.reduce) == (2, "mean")
    # window 2, mean: max over positions of the running 2-token mean
    s = torch.tensor([0.1, 0.9, 0.3, 0.5])
    assert head.span_score(s) == pytest.approx(0.6)
    m = model()
    sae = toy_sae(m)
    x = torch.randn(3, 8)
    z = sae.encode(x)
    torch.testing.assert_close(head.token_scores(x, z, sae), torch.sigmoid(z @ head.w - 1.0))
    # an saeerr probe (d_sae + d_in weights) also reads x - decode(z)
    w_err = torch.cat([head.w, torch.ones(8)])
    err_head = ProbeHead("e", w_err, -1.0)
    expected = torch.sigmoid(z @ head.w + (x - sae.decode(z)).sum(-1) - 1.0)
    torch.testing.assert_close(err_head.token_scores(x, z, sae), expected)
    assert load_probes(tmp_path).probes[0].name == "dec"


def test_probe_head_reads_a_dense_probe_over_the_residual_at_the_response_end(tmp_path):
    rec = record({"runtime_window": {"tokens": 1, "reduce": "max", "at": "response_end"}})
    w_resid = np.linspace(-1, 1, 8).astype(np.float32)
    dense = ProbeRecord("dec", "deception", "token", np.zeros(16, np.float32), 0.5, {"0.01": 0.9}, [(7, 0.8)],
                        extra=rec.extra, resid_weights=w_resid)
    save_probes(tmp_path, [dense], "blocks.1.hook_resid_post")
    head = ProbeHead.from_pack(tmp_path, "dec", 16)
    assert head.at == "response_end" and head.w_resid is not None
    m = model()
    sae = toy_sae(m)
    x = torch.randn(3, 8)
    torch.testing.assert_close(head.token_scores(x, sae.encode(x), sae), torch.sigmoid(x @ torch.from_numpy(w_resid) + 0.5))
    # read once at the end: the last token's score, not the span's maximum
    assert head.span_score(torch.tensor([0.9, 0.2, 0.4])) == pytest.approx(0.4)


def test_concept_prompts_start_the_positive_answer():
    from classifiers.datasets import default_datasets_root, load_transcripts
    from classifiers.interp.concept_prompts import concept_dataset, concept_prompts, neutral_texts

    root = default_datasets_root()
    if not root.is_dir():
        pytest.skip(f"shared datasets not found at {root}")
    ps = concept_prompts("bias", root, n=3, seed=0)
    assert len(ps) == 3 and ps == concept_prompts("bias", root, n=3, seed=0)
    answers = {t.user_text: t.assistant_text for t in load_transcripts(concept_dataset("bias"), root) if t.label == 1}
    for p in ps:
        assert p.messages[-1]["role"] == "user"
        assert answers[p.messages[-1]["content"]].startswith(p.assistant_prefix)
    texts = neutral_texts(root, n=2)
    assert len(texts) == 2 and all(200 <= len(t) <= 500 for t in texts)
