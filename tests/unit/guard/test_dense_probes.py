"""Dense probes (weights over the raw residual at the pack's hook) in the pack format, the
probe bank and the guard: they score what the residual says, and their alerts name the SAE
features whose decoded directions move the probe's logit."""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from classifiers.probes.io import save_probes
from monitor.engine import Engine, SamplingParams
from monitor.engine.hooks import hook_scope
from monitor.guard import Guard, ProbeBank
from monitor.guard.guard import scope_by_prompt_length
from monitor.pack.probes_file import ProbeFileError, ProbeRecord, load_probes
from monitor.policy.loader import load_policy_text
from monitor.policy.packinfo import StaticPackInfo
from tests.toymodel import ToyTokenizer, toy_model
from tests.unit.guard.test_guard import D_SAE, HOOK, PROMPT, toy_sae

D_MODEL = 8


def records(w_dense: np.ndarray, b_dense: float = 0.0) -> list[ProbeRecord]:
    sae_w = np.zeros(D_SAE, np.float32)
    sae_w[3] = 0.5
    return [
        ProbeRecord("sae_probe", "bias", "mean", sae_w, -1.0, {"0.01": 0.9}, [(3, 0.5)]),
        ProbeRecord("dense_probe", "sycophancy", "last", np.zeros(D_SAE, np.float32), b_dense,
                    {"0.01": 0.8}, [(1, 0.2)], resid_weights=w_dense.astype(np.float32)),
    ]


def test_dense_and_sae_probes_round_trip(tmp_path):
    w = np.arange(D_MODEL, dtype=np.float32) / 10
    save_probes(tmp_path, records(w, 0.25), HOOK, extra={"sae_sha256": "x"})
    doc = json.loads((tmp_path / "probes.json").read_text())
    assert doc["probes"]["dense_probe"]["feature_basis"] == "resid"
    assert doc["probes"]["sae_probe"]["feature_basis"] == "sae"
    ps = load_probes(tmp_path)
    sae_rec, dense_rec = ps.probes
    assert sae_rec.resid_weights is None and sae_rec.feature_basis == "sae"
    np.testing.assert_array_equal(dense_rec.resid_weights, w)
    assert dense_rec.bias == pytest.approx(0.25)
    assert ps.W_resid is not None and ps.W_resid.shape == (D_MODEL, 2)
    assert not ps.W_resid[:, 0].any() and not ps.W[:, 1].any()


def test_an_sae_only_file_has_no_residual_matrix(tmp_path):
    save_probes(tmp_path, records(np.ones(D_MODEL))[:1], HOOK)
    assert set(load_file(str(tmp_path / "probes.safetensors"))) == {"W", "b"}
    assert load_probes(tmp_path).W_resid is None


@pytest.mark.parametrize("tamper, message", [
    ("no_resid", "has no W_resid"),
    ("sae_column", "its W column is not zero"),
    ("basis", "feature_basis 'pca' is not one of"),
])
def test_inconsistent_dense_probe_files_are_refused(tmp_path, tamper, message):
    save_probes(tmp_path, records(np.ones(D_MODEL)), HOOK)
    st, js = tmp_path / "probes.safetensors", tmp_path / "probes.json"
    tensors = load_file(str(st))
    doc = json.loads(js.read_text())
    if tamper == "no_resid":
        del tensors["W_resid"]
    elif tamper == "sae_column":
        tensors["W"][5, 1] = 0.1
    else:
        doc["probes"]["dense_probe"]["feature_basis"] = "pca"
    save_file(tensors, str(st))
    js.write_text(json.dumps(doc))
    with pytest.raises(ProbeFileError, match=message):
        load_probes(tmp_path)


def test_writer_refuses_a_dense_probe_with_sae_weights(tmp_path):
    bad = ProbeRecord("d", "sycophancy", "last", np.ones(D_SAE, np.float32), 0.0, {}, [],
                      resid_weights=np.ones(D_MODEL, np.float32))
    with pytest.raises(ProbeFileError, match="non-zero SAE weights"):
        save_probes(tmp_path, [bad], HOOK)


def bank_for(w: np.ndarray, b: float, tmp_path) -> tuple[ProbeBank, torch.nn.Module]:
    sae = toy_sae()
    save_probes(tmp_path, records(w, b), HOOK)
    return ProbeBank.from_probes(load_probes(tmp_path), {"features": {"2": {"label": "toy two"}}},
                                 W_dec=sae.W_dec), sae


def test_dense_score_reads_the_residual_and_features_explain_its_logit(tmp_path):
    torch.manual_seed(0)
    w = torch.randn(D_MODEL).numpy()
    bank, sae = bank_for(w, 0.3, tmp_path)
    x = torch.randn(5, D_MODEL) * 3
    z = sae.encode(x).detach()
    scores = bank.score(z, x)
    expected = torch.sigmoid(x @ torch.as_tensor(w) + 0.3)
    torch.testing.assert_close(scores[:, 1], expected, rtol=1e-5, atol=1e-6)
    # the SAE probe column is unchanged by the residual term
    torch.testing.assert_close(scores[:, 0], torch.sigmoid(z[:, 3] * 0.5 - 1.0), rtol=1e-5, atol=1e-6)
    # decomposition: features' contributions + (b_dec + error) . w + b == the logit
    for row in range(5):
        contrib = bank.contributions("dense_probe", z[row])
        rest = (x[row] - z[row] @ sae.W_dec) @ torch.as_tensor(w)
        logit = torch.logit(scores[row, 1].double()).float()
        torch.testing.assert_close(contrib.sum() + rest + 0.3, logit, rtol=1e-4, atol=1e-4)
        ev = bank.evidence("dense_probe", z[row], k=3)
        ranked = torch.argsort(contrib, descending=True)[: len(ev)].tolist()
        assert [f.id for f in ev] == ranked and all(contrib[f.id] > 0 for f in ev)


def test_scoring_dense_probes_without_the_residual_is_an_error(tmp_path):
    bank, sae = bank_for(np.ones(D_MODEL), 0.0, tmp_path)
    with pytest.raises(ValueError, match="needs the residual"):
        bank.score(sae.encode(torch.randn(1, D_MODEL)))


def test_a_dense_probe_for_another_width_is_refused(tmp_path):
    save_probes(tmp_path, records(np.ones(D_MODEL + 1)), HOOK)
    with pytest.raises(ValueError, match="9-dim residual but the SAE decodes to 8"):
        ProbeBank.from_probes(load_probes(tmp_path), W_dec=toy_sae().W_dec)


def test_dense_probe_steering_direction_is_its_unit_weight_vector(tmp_path):
    w = np.array([3.0, 4.0] + [0.0] * (D_MODEL - 2))
    bank, sae = bank_for(w, 0.0, tmp_path)
    torch.testing.assert_close(bank.direction("dense_probe", sae.W_dec),
                               torch.tensor([0.6, 0.8] + [0.0] * (D_MODEL - 2)))


def test_guard_scores_dense_probes_on_the_tapped_residual_and_alerts_carry_features(tmp_path):
    torch.manual_seed(3)
    w = torch.randn(D_MODEL).numpy()
    bank, sae = bank_for(w, 0.0, tmp_path)
    guard = Guard(sae, bank, HOOK, ToyTokenizer(), model_spec="toy")
    pack = StaticPackInfo.build(D_SAE, {
        "sae_probe": {"concept": "bias", "thresholds": {"0.01": 0.9}, "top_features": [3]},
        "dense_probe": {"concept": "sycophancy", "thresholds": {"0.01": 0.8}, "top_features": [1]}})
    pol = load_policy_text("""
name: t
mode: enforce
on_monitor_error: fail_open
rules:
  - id: dense-any
    when: {probe: dense_probe, threshold: 0.0, scope: response}
    then:
      - alert: {severity: low}
""", pack)
    engine = Engine(toy_model(), ToyTokenizer(), fast=True)
    alerts = []
    sess = guard.session(pol, "req-d", alerts.append, scope_by_prompt_length(len(PROMPT)))
    seen: list[torch.Tensor] = []
    with hook_scope(engine.model, [(HOOK, lambda x, hook=None: seen.append(x.detach().clone()))]), \
            guard.attach(engine.model, sess) as tap:
        gen = engine.generation(PROMPT, SamplingParams(max_tokens=4), taps=[tap], request_id="req-d")
        list(gen)
    prompt_resid = seen[0][0]
    assert prompt_resid.shape[0] == len(PROMPT)
    # prompt positions 1.. (position 0 is the attention sink and never scored)
    reports = {r.position: r for r in sess.reports}
    for pos in range(1, len(PROMPT)):
        expected = float(torch.sigmoid(prompt_resid[pos] @ torch.as_tensor(w)))
        assert reports[pos].scores["dense_probe"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert len(alerts) == 1 and alerts[0].concept == "sycophancy"
    assert alerts[0].features, "a dense verdict names the SAE features behind it"
