"""The larger offline models (Qwen2.5-Coder-Instruct 0.5B and 1.5B, architecture qwen2:
Q/K/V biases, grouped-query attention with 2 KV heads, rotary base 1e6, untied embeddings)
in the fast engine: parity with HF, batching, the tap, clamping, and the CLI.

Each model is loaded once per module (the 1.5B takes ~40 s and ~8 GB from the fp32 cache;
the first run on a machine fetches and dequantizes it, ~2 min); HF's reference outputs are
computed first and the HF model freed, so the two never sit in memory together. Tolerances are the ones the
README promises on any x86 CPU."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monitor.engine import Engine, SamplingParams, Tap
from monitor.engine.batch import BatchDecoder, BatchRequest

pytestmark = pytest.mark.slow

MODELS = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
MESSAGES = [{"role": "user", "content": "Write a Python function that returns the square of a number."}]


@pytest.fixture(scope="module", params=MODELS)
def spec(request):
    return request.param


@pytest.fixture(scope="module")
def hf_ref(spec):
    """What HF computes on the prompt (logits, hidden states, 32 greedy tokens), taken before
    the hooked model is loaded and with the HF model freed again: the two never share memory
    (the 1.5B is ~7 GB in fp32 each)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from monitor.model.dequant import fp32_cache_dir
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import MODELS as REGISTRY
    from tests.conftest import threads_for_tests

    torch.set_num_threads(threads_for_tests())
    hf_dir, _ = fp32_cache_dir(REGISTRY[spec], default_cache_root())
    tok = AutoTokenizer.from_pretrained(hf_dir)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if not isinstance(ids, list) else ids)
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    with torch.inference_mode():
        out = hf(torch.tensor([ids]), output_hidden_states=True)
        gen = hf.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False, eos_token_id=stops,
                          pad_token_id=stops[-1])
    ref = {"ids": ids, "logits": out.logits, "hidden": out.hidden_states,
           "greedy": [t for t in gen[0, len(ids):].tolist() if t not in stops]}
    del hf, out
    gc.collect()
    return ref


@pytest.fixture(scope="module")
def qwen(spec, hf_ref):
    from monitor.model import load_model

    lm = load_model(spec)
    yield lm, Engine.from_loaded(lm)
    del lm
    gc.collect()


def test_the_file_is_what_the_registry_pins(qwen):
    from monitor.model.registry import MODELS as REGISTRY

    lm, _ = qwen
    entry = REGISTRY[lm.spec]
    assert lm.weights_sha256 == entry.gguf_sha256
    assert lm.model.cfg.n_layers == entry.n_layers and lm.model.cfg.original_architecture == "Qwen2ForCausalLM"
    assert lm.model.cfg.n_key_value_heads == 2 and lm.model.cfg.rotary_base == 1_000_000
    assert float(lm.model.blocks[0].attn.b_Q.abs().sum()) > 0  # the Q/K/V biases arrived


def test_logits_and_hook_values_match_hf(qwen, hf_ref):
    lm, engine = qwen
    assert engine.render(MESSAGES) == hf_ref["ids"]  # the same chat template, the same tokens
    ids = torch.tensor([hf_ref["ids"]])
    n = lm.model.cfg.n_layers
    layers = [0, n // 2, n - 2]
    with torch.inference_mode():
        logits, cache = lm.model.run_with_cache(ids, names_filter=[f"blocks.{L}.hook_resid_post" for L in layers])
    assert (logits - hf_ref["logits"]).abs().max().item() <= 1e-3
    for L in layers:
        a, b = cache[f"blocks.{L}.hook_resid_post"], hf_ref["hidden"][L + 1]
        assert ((a - b).norm() / b.norm()).item() <= 1e-4, L


def test_engine_greedy_tokens_match_hf_generate_for_32_tokens(qwen, hf_ref):
    _, engine = qwen
    gen = engine.generation(hf_ref["ids"], SamplingParams(max_tokens=32))
    list(gen)
    assert len(gen.completion_ids) == 32
    assert gen.completion_ids == hf_ref["greedy"][:32]


def test_batched_decoding_gives_each_request_its_tokens_alone(qwen):
    lm, engine = qwen
    questions = ["What is the capital of Australia?", "Name a sorting algorithm.", "What does `ls -la` do?"]
    prompts = [engine.render([{"role": "user", "content": q}]) for q in questions]
    params = SamplingParams(max_tokens=10)
    alone = []
    for p in prompts:
        g = engine.generation(p, params)
        list(g)
        alone.append(g.completion_ids)
    dec = engine.batch_decoder(max_batch=3, prefill_chunk=8)  # chunked prefill for the late joiners
    assert isinstance(dec, BatchDecoder)
    reqs = [BatchRequest(f"r{i}", p, params) for i, p in enumerate(prompts)]
    dec.add(reqs[0])
    dec.step()
    dec.add(reqs[1])
    dec.add(reqs[2])
    while dec.active or dec.pending:
        dec.step()
    assert [r.completion_ids for r in reqs] == alone


def test_tap_sees_every_position_and_a_steer_changes_the_answer(qwen):
    lm, engine = qwen
    hook = f"blocks.{lm.model.cfg.n_layers // 2}.hook_resid_post"
    prompt = engine.render(MESSAGES)
    params = SamplingParams(max_tokens=12)
    base = engine.generation(prompt, params)
    list(base)
    seen, norms = [], []

    def identity(x, call):
        seen.append(x.shape[1])
        norms.append(float(x[0, -1].norm()))

    with Tap(lm.model, hook, identity) as tap:
        same = engine.generation(prompt, params, taps=[tap])
        list(same)
    assert same.completion_ids == base.completion_ids
    assert sum(seen) == len(prompt) + len(same.completion_ids)
    direction = torch.randn(lm.model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    scale = 4.0 * sorted(norms)[len(norms) // 2]  # four typical residual norms
    with Tap(lm.model, hook, lambda x, call: x + scale * direction / direction.norm()) as tap:
        steered = engine.generation(prompt, params, taps=[tap])
        list(steered)
    assert steered.completion_ids != base.completion_ids
    assert not lm.model.hook_dict[hook]._forward_hooks


def test_cli_generate_streams_the_model(qwen):
    lm, _ = qwen
    if lm.spec != MODELS[0]:
        pytest.skip("the CLI is checked on the 0.5B (a second 1.5B load costs ~40 s and 7 GB)")
    r = subprocess.run([sys.executable, "-m", "monitor", "generate", "What is the capital of Australia?",
                        "--model", lm.spec, "--max-tokens", "12", "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Canberra" in r.stdout


def test_the_models_pack_explains_its_live_residual_and_belongs_to_it_alone(qwen):
    """The committed 0.5B pack: its SAE reconstructs the hook's residual on a chat it never
    saw (EV on the monitored positions, the README's >= 0.80 goal with margin for one
    prompt), and it refuses the other model."""
    from monitor.guard.positions import monitorable
    from monitor.pack import PackError, load_pack

    lm, engine = qwen
    root = Path(__file__).resolve().parents[3] / "classifiers" / "packs" / lm.spec
    if not (root / "manifest.json").is_file():  # the 1.5B has only its probe study so far
        pytest.skip(f"no guard pack for {lm.spec} yet (classifiers/packs/{lm.spec}/manifest.json)")
    pack = load_pack(root)
    pack.check_model(lm.spec, lm.weights_sha256)
    ids = torch.tensor([engine.render([{"role": "user", "content": "Explain what a Python decorator is, briefly."},
                                       {"role": "assistant", "content": "A decorator wraps a function to add "
                                        "behaviour, such as logging or caching, without changing its code."}])])
    with torch.inference_mode():
        _, cache = lm.model.run_with_cache(ids, names_filter=[pack.hook_name])
        x = cache[pack.hook_name][0]
        keep = monitorable(ids[0], special_ids=lm.tokenizer.all_special_ids, resid=x).mask
        x = x[keep]
        recon = pack.sae.decode(pack.sae.encode(x))
    ev = 1 - ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert keep.sum() >= 30 and float(ev) >= 0.7
    other = "smollm2-135m-instruct"
    with pytest.raises(PackError, match=f"was built for model {lm.spec}.*but the model is {other}"):
        pack.check_model(other, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")


def test_int4_weights_keep_the_answer_and_what_the_pack_reads(qwen):
    """The int4 weight format on the real model follows its file: every matrix the GGUF
    stores as Q4_K groups is packed on the file's own grid (exactly), every wider one (Q5_0,
    Q6_K, Q8_0) stays bf16. The answer starts the same, teacher-forced on the fp32 answer
    the int4 next token agrees at >= 90% of its positions, and the middle layer's residual
    stays within 5% relative error over the monitored positions (bf16 measures ~0.5%;
    requantizing Q4_K between each group's min and max measured 7% on the 1.5B and 14-17%
    on the 0.5B). Whether a format may run with a pack is decided by the quality gates,
    ops/bench/weights_quality.py, and the README says which pass."""
    from monitor.engine.hooks import capture
    from monitor.engine.weights import BF16Linear, Int4Linear, RowStack
    from monitor.guard.positions import monitorable
    from monitor.model.gguf_file import GRID_TYPES, STORED_AS

    lm, engine = qwen
    int4 = Engine.from_loaded(lm, weights="int4")
    kinds = {"exact int4": 0, "bf16": 0}
    for block, layer in zip(lm.model.blocks, int4._fast.ff.layers, strict=True):
        stored = {**getattr(block.attn, STORED_AS), **getattr(block.mlp, STORED_AS)}
        assert set(stored) == {"q", "k", "v", "o", "gate", "up", "down"}
        for key in ("wqkv", "wo", "wgi", "wout"):
            for part in (layer[key].parts if isinstance(layer[key], RowStack) else [layer[key]]):
                assert isinstance(part, (Int4Linear, BF16Linear))
                if isinstance(part, Int4Linear):
                    assert part.exact, f"{lm.spec}: an int4 matrix is not on its file's grid"
                kinds["exact int4" if isinstance(part, Int4Linear) else "bf16"] += 1
        wide = {k for k, m in stored.items() if m.type not in GRID_TYPES}
        assert isinstance(layer["wout"], BF16Linear) == ("down" in wide)
    print(f"{lm.spec} int4 products: {kinds}")
    prompt = engine.render(MESSAGES)
    ref = engine.generation(prompt, SamplingParams(max_tokens=48))
    list(ref)
    got = int4.generation(prompt, SamplingParams(max_tokens=48))
    list(got)
    assert got.completion_ids[:4] == ref.completion_ids[:4]
    seq = torch.tensor([prompt + ref.completion_ids])
    hook = f"blocks.{lm.model.cfg.n_layers // 2}.hook_resid_post"
    outs = {}
    for name, eng in (("fp32", engine), ("int4", int4)):
        ff = eng._fast.ff
        with torch.inference_mode(), capture(lm.model, {"x": hook}) as got_x:
            logits = ff.logits(ff.forward(seq, ff.new_cache(batch=1, capacity=seq.shape[1])))[0]
            outs[name] = (logits, got_x["x"][0].clone())
    n = len(ref.completion_ids)
    pos = slice(len(prompt) - 1, len(prompt) - 1 + n)
    agree = (outs["int4"][0][pos].argmax(-1) == outs["fp32"][0][pos].argmax(-1)).float().mean()
    assert float(agree) >= 0.90
    keep = monitorable(seq[0], special_ids=lm.tokenizer.all_special_ids, resid=outs["fp32"][1]).mask
    x, y = outs["fp32"][1][keep], outs["int4"][1][keep]
    rel = float((y - x).norm() / x.norm())
    print(f"{lm.spec} int4: next-token agreement {float(agree):.3f}, hook relative error {rel:.3f}")
    assert rel <= 0.05


def test_the_models_dense_probes_score_live_tokens_as_offline_and_alerts_name_features(qwen):
    """A pack with dense verdict probes (the 1.5B's): the guard's per-token scores during a
    generation are what the offline runtime scorer computes on the same transcript (so the
    calibrated thresholds mean the same live), and an alert names labelled SAE features."""
    import numpy as np

    from classifiers.probes.readings import Reading
    from classifiers.probes.runtime_eval import score_chats
    from monitor.guard import Guard
    from monitor.guard.guard import scope_by_prompt_length
    from monitor.pack import load_pack
    from monitor.policy.loader import load_policy_text

    lm, engine = qwen
    root = Path(__file__).resolve().parents[3] / "classifiers" / "packs" / lm.spec
    if not (root / "probes" / "probes.json").is_file():
        pytest.skip(f"no probes in the {lm.spec} pack")
    pack = load_pack(root)
    dense = [r for r in pack.probes.probes if r.resid_weights is not None]
    if not dense:
        pytest.skip(f"the {lm.spec} pack has no dense probes")
    guard = Guard.from_pack(pack, lm.tokenizer, model_spec=lm.spec)
    name = dense[0].name
    policy = load_policy_text(f"""
name: t
mode: enforce
on_monitor_error: fail_open
rules:
  - id: any-{name}
    when: {{probe: {name}, threshold: 0.0, scope: response}}
    then:
      - alert: {{severity: low}}
  - id: end-{name}
    when: {{probe: {name}, threshold: 0.0, window: {{tokens: 1, reduce: max}}, scope: response, at: response_end}}
    then:
      - alert: {{severity: low}}
""", pack.info)
    messages = [{"role": "user", "content": "What is the capital of Australia?"}]
    prompt = engine.render(messages)
    alerts = []
    session = guard.session(policy, "req-dense", alerts.append, scope_by_prompt_length(len(prompt)))
    with guard.attach(lm.model, session) as tap:
        gen = engine.generation(prompt, SamplingParams(max_tokens=12), taps=[tap], request_id="req-dense")
        list(gen)
    live = [r.scores[name] for r in session.reports if r.scope == "response"]
    assert len(live) >= 3
    answer = lm.tokenizer.decode(gen.completion_ids, skip_special_tokens=True)
    rec = dense[0]
    layer = int(pack.hook_name.split(".")[1])
    two = np.stack([rec.weights, rec.weights], 1)  # the same probe read per token, and at the end
    offline = score_chats(lm, pack.sae, layer, two, np.asarray([rec.bias] * 2),
                          [Reading(1, "max"), Reading(1, "max", "response_end")],
                          [[*messages, {"role": "assistant", "content": answer}]],
                          W_resid=np.stack([rec.resid_weights, rec.resid_weights], 1))
    answer_scores = live[: len(gen.completion_ids)]
    assert offline.scores[0, 0] == pytest.approx(max(answer_scores), abs=0.02)
    assert offline.scores[0, 1] == pytest.approx(answer_scores[-1], abs=0.02)
    assert not [a for a in alerts if a.rule_id.startswith("end-")]  # nothing until the answer has ended
    (end,) = session.finish()
    assert end.score == pytest.approx(offline.scores[0, 1], abs=0.02) and end.features
    assert alerts and alerts[0].features
    assert any(f.label for f in alerts[0].features), "the features behind a verdict carry their labels"
