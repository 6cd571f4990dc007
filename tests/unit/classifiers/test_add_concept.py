"""The "Adding a concept" guide of classifiers/README.md, followed step by step on a toy
concept: its data file and loader, ONE register_concept entry and its dataset's
registration, a probe trained on the toy model's SAE codes and written into a guard pack,
then a policy on that probe raising an alert carrying the new concept."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from classifiers.datasets import (
    CONCEPTS,
    FRAMINGS,
    ConceptFraming,
    Source,
    Transcript,
    chat_pair,
    concept_names,
    load_transcripts,
    register_concept,
    register_dataset,
)
from classifiers.datasets import concepts as concept_registry
from classifiers.datasets import registry as dataset_registry
from classifiers.probes.io import ProbeRecord, save_probes
from classifiers.probes.train import train_probe
from tests.toymodel import ToyTokenizer, toy_model

CONCEPT, DATASET = "toy_shouting", "toy_shouting_pairs"
HOOK = "blocks.1.hook_resid_post"
HIGH, LOW = "xyz", "abc"


@pytest.fixture
def registries() -> Iterator[None]:
    """Whatever the test registers is removed afterwards (the registries are process-wide)."""
    before = (set(concept_registry._REGISTRY), set(dataset_registry._REGISTRY))
    yield
    for key in set(concept_registry._REGISTRY) - before[0]:
        del concept_registry._REGISTRY[key]
    for key in set(dataset_registry._REGISTRY) - before[1]:
        del dataset_registry._REGISTRY[key]


# Step 1: the data, one JSONL file under the datasets root
def write_data(root: Path, n: int = 40) -> None:
    rng = random.Random(0)
    rows = [{"id": f"p{i}", "prompt": "say something", "label": i % 2,
             "reply": "".join(rng.choice(HIGH if i % 2 else LOW) for _ in range(6))} for i in range(n)]
    (root / DATASET).mkdir(parents=True)
    (root / DATASET / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# Step 2: the loader (a classifiers/datasets/<name>.py module in real life)
def load(root: Path) -> Iterator[Transcript]:
    for line in (root / DATASET / "data.jsonl").read_text().splitlines():
        row = json.loads(line)
        yield Transcript(chat_pair(row["prompt"], row["reply"]), row["label"], CONCEPT, DATASET, row["id"])


def toy_sae() -> object:
    """The guard tests' toy SAE, told which hook it reads (saved into the pack's cfg.json)."""
    from tests.unit.guard.test_guard import toy_sae as guard_toy_sae

    sae = guard_toy_sae()
    sae.cfg.metadata.hook_name = HOOK
    return sae


def token_codes(model: object, sae: object, text: str) -> np.ndarray:
    """SAE codes of the positions of ``text`` after a BOS that count, by the rule the guard
    applies (monitor.guard.positions: not the sink at 0, not the BOS, not sink-like rows)."""
    from monitor.engine.hooks import capture
    from monitor.guard.positions import monitorable

    ids = torch.tensor([1, *ToyTokenizer()(text)["input_ids"]])
    with capture(model, {"x": HOOK}) as seen:
        model(ids[None])  # type: ignore[operator]
    resid = seen["x"][0]
    keep = monitorable(ids, special_ids=(0, 1), resid=resid).mask
    return sae.encode(resid[keep]).detach().numpy()  # type: ignore[attr-defined]


def test_a_registered_toy_concept_goes_from_data_to_an_alert(tmp_path: Path, registries: None) -> None:
    from monitor.engine import Engine, SamplingParams
    from monitor.guard import Guard
    from monitor.guard.guard import scope_by_prompt_length
    from monitor.pack import file_sha256, load_pack
    from monitor.policy.loader import load_policy_text

    write_data(tmp_path / "datasets")
    with pytest.raises(ValueError, match="unknown concept"):  # the concept comes first
        register_dataset(DATASET, load, concept=CONCEPT, role="train")

    # Step 3: one entry for the concept, then its dataset
    register_concept(ConceptFraming(CONCEPT, (Source(DATASET),), description="the reply is in capitals"))
    register_dataset(DATASET, load, concept=CONCEPT, role="train", description="toy replies")
    assert CONCEPT in CONCEPTS and concept_names()[-1] == CONCEPT and FRAMINGS[CONCEPT].sources == (Source(DATASET),)
    with pytest.raises(ValueError, match="already registered"):
        register_concept(ConceptFraming(CONCEPT, (Source(DATASET),)))

    # Step 4: train the probe on the pack SAE's codes of the assistant tokens
    model, sae = toy_model(), toy_sae()
    rows, labels, groups = [], [], []
    for t in load_transcripts(DATASET, tmp_path / "datasets"):
        codes = token_codes(model, sae, t.assistant_text)
        rows.append(codes)
        labels += [t.label] * len(codes)
        groups += [t.group] * len(codes)
    fit = train_probe(np.concatenate(rows), labels, groups, cs=(0.1, 1.0), n_folds=4)
    assert fit.cv_auroc > 0.9

    # Step 5: the guard pack (SAE, manifest naming the model, probes recording the SAE hash)
    pack_dir = tmp_path / "pack"
    sae.save_model(pack_dir / "sae")  # type: ignore[attr-defined]
    (pack_dir / "manifest.json").write_text(json.dumps(
        {"model": {"id": "toy", "weights_sha256": "toy-weights"}, "hook_name": HOOK}))
    record = ProbeRecord(name=CONCEPT, concept=CONCEPT, pooling="max", weights=fit.weights, bias=fit.bias,
                         thresholds={"0.01": 0.5}, top_features=[(0, 1.0)])
    save_probes(pack_dir / "probes", [record], HOOK,
                extra={"sae_sha256": file_sha256(pack_dir / "sae" / "sae_weights.safetensors")})

    # Step 6: a policy on the new probe; the daemon's path: pack -> model check -> guard
    pack = load_pack(pack_dir)
    pack.check_model("toy", "toy-weights")
    guard = Guard.from_pack(pack, ToyTokenizer(), model_spec="toy")
    policy = load_policy_text(f"""
name: toy
mode: enforce
on_monitor_error: fail_open
rules:
  - id: shouting
    when: {{probe: {CONCEPT}, threshold: 0.9, scope: prompt}}
    then:
      - alert: {{severity: low}}
""", pack.info)
    engine = Engine(model, ToyTokenizer(), fast=True)

    def alerts_for(text: str) -> list[object]:
        prompt = [1, *ToyTokenizer()(text)["input_ids"]]
        alerts: list[object] = []
        session = guard.session(policy, "req", alerts.append, scope_by_prompt_length(len(prompt)))
        with guard.attach(engine.model, session) as tap:
            list(engine.generation(prompt, SamplingParams(max_tokens=1), taps=[tap], request_id="req"))
        return alerts

    fired = alerts_for("xyzzyx")
    assert [(a.rule_id, a.concept) for a in fired] == [("shouting", CONCEPT)]  # type: ignore[attr-defined]
    assert alerts_for("abccba") == []


@pytest.mark.parametrize("concept", list(CONCEPTS))
def test_every_registered_concept_trains_on_registered_datasets_of_its_own(concept: str) -> None:
    from classifiers.datasets import get_dataset

    framing = FRAMINGS[concept]
    assert framing.sources
    for source in framing.evaluated:
        assert get_dataset(source.dataset).concept == concept
