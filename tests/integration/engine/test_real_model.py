"""The real default model: TransformerLens parity with HF, the engine's greedy tokens, and
the tap on a real residual stream."""

import subprocess
import sys

import pytest
import torch

from monitor.engine import SamplingParams, Tap

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]
HOOK = "blocks.15.hook_resid_post"


def test_logits_match_hf_on_a_chat_prompt(loaded_model, engine, hf_model):
    ids = torch.tensor([engine.render(MESSAGES)])
    with torch.inference_mode():
        tl = loaded_model.model(ids)
        hf = hf_model(ids).logits
    assert (tl - hf).abs().max().item() <= 1e-3


def test_engine_greedy_tokens_match_hf_generate_for_32_tokens(engine, hf_model):
    prompt = engine.render(MESSAGES)
    gen = engine.generation(prompt, SamplingParams(max_tokens=32))
    list(gen)
    with torch.inference_mode():
        out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False,
                                eos_token_id=list(engine.stop_token_ids), pad_token_id=2)
    hf_tokens = out[0, len(prompt):].tolist()
    hf_tokens = [t for t in hf_tokens if t not in engine.stop_token_ids]
    assert len(gen.completion_ids) >= 16
    assert gen.completion_ids == hf_tokens[: len(gen.completion_ids)]


def test_tap_on_real_model_identity_and_clamp(loaded_model, engine):
    prompt = engine.render(MESSAGES)
    p = SamplingParams(max_tokens=24)
    base = engine.generation(prompt, p)
    list(base)
    positions = []

    def identity(x, call):
        positions.append((call.phase, call.start_pos, x.shape[1]))
        return x

    with Tap(loaded_model.model, HOOK, identity) as tap:
        same = engine.generation(prompt, p, taps=[tap])
        list(same)
    assert same.completion_ids == base.completion_ids
    assert positions[0] == ("prefill", 0, len(prompt))
    assert sum(n for _, _, n in positions) == len(prompt) + len(same.completion_ids)

    direction = torch.randn(loaded_model.model.cfg.d_model, generator=torch.Generator().manual_seed(0))

    def steer(x, call):
        return x + 40.0 * direction

    with Tap(loaded_model.model, HOOK, steer) as tap:
        changed = engine.generation(prompt, p, taps=[tap])
        list(changed)
    assert changed.completion_ids != base.completion_ids
    assert not loaded_model.model.hook_dict[HOOK]._forward_hooks


def test_bad_model_spec_gives_one_line_error_naming_the_fix():
    r = subprocess.run([sys.executable, "-m", "monitor", "generate", "hi", "--model", "llama-9000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "unknown model spec 'llama-9000'" in lines[0] and "smollm2-135m-instruct" in lines[0]
    assert "Traceback" not in r.stderr
