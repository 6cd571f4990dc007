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
