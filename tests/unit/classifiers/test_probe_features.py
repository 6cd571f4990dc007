"""Feature extraction pieces: span finder, pooling, cache store, selection, run-time readings."""

from __future__ import annotations

import re
from collections import deque

import numpy as np
import pytest
import scipy.sparse as sp

from classifiers.datasets import Transcript, chat_pair
from classifiers.features.extract import Residuals
from classifiers.features.plan import message_key, select
from classifiers.features.pooling import pool
from classifiers.features.render import SpanError, render
from classifiers.features.store import chunk_name, write_chunk
from classifiers.probes.readings import Reading, response_scores


class ToyTokenizer:
    """ChatML template, special tokens as single ids, every other character one token."""

    chat_template = "chatml"
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    all_special_ids = (0, 1, 2)
    eos_token_id = 2
    unk_token_id = None

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        msgs = list(messages)
        if not msgs or msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": "You are helpful"}, *msgs]
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def convert_tokens_to_ids(self, token):
        return self.specials.index(token) if token in self.specials else None

    def __call__(self, text, add_special_tokens=False):
        ids = []
        for part in re.split(r"(<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>)", text):
            if part in self.specials:
                ids.append(self.specials.index(part))
            else:
                ids.extend(3 + ord(c) for c in part)
        return {"input_ids": ids}

    def decode(self, ids):
        return "".join(self.specials[i] if i < 3 else chr(i - 3) for i in ids)


def test_span_is_exactly_the_assistant_content():
    tok = ToyTokenizer()
    r = render(tok, chat_pair("What is 2+2?", "It is 4."))
    assert tok.decode(r.ids[r.start : r.end]) == "It is 4."
    assert tok.decode(r.ids[: r.start]).endswith("<|im_start|>assistant\n")
    assert r.ids[r.end] == 2  # the closing <|im_end|> is not in the span
    assert r.prefix_len == r.start and r.n_content == len("It is 4.")


def test_span_with_system_and_multi_turn():
    tok = ToyTokenizer()
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
            {"role": "assistant", "content": "final answer"}]
    r = render(tok, msgs)
    assert tok.decode(r.ids[r.start : r.end]) == "final answer"


def test_span_refuses_a_chat_not_ending_with_the_assistant():
    with pytest.raises(SpanError):
        render(ToyTokenizer(), [{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("how", ["mean", "max", "last"])
def test_pooling_dense_and_sparse_agree(rng, how):
    T = rng.normal(size=(10, 4)).clip(min=0)
    offsets = np.array([0, 3, 4, 10])
    dense = pool(T, offsets, how)
    sparse = pool(sp.csr_matrix(T), offsets, how)
    np.testing.assert_allclose(dense, sparse, rtol=1e-6)
    ref = {"mean": np.mean, "max": np.max, "last": lambda a, axis: a[-1]}[how]
    for i in range(3):
        np.testing.assert_allclose(dense[i], ref(T[offsets[i] : offsets[i + 1]], axis=0), rtol=1e-6)


def test_mean_of_token_logits_is_the_logit_of_mean_pooled_features(rng):
    T = rng.normal(size=(7, 5))
    w, b = rng.normal(size=5), 0.3
    offsets = np.array([0, 2, 7])
    pooled = pool(T, offsets, "mean")
    for i in range(2):
        tok_logits = T[offsets[i] : offsets[i + 1]] @ w + b
        assert np.isclose(tok_logits.mean(), pooled[i] @ w + b, atol=1e-5)


def _policy_simulation(scores, window, reduce):
    """What monitor/policy does: a deque of the last N in-scope scores, pooled, compared."""
    dq: deque[float] = deque(maxlen=window)
    best = -1.0
    for s in scores:
        dq.append(s)
        value = max(dq) if reduce == "max" else sum(dq) / len(dq)
        best = max(best, value)
    return best


@pytest.mark.parametrize("reading", [Reading(1, "max"), Reading(4), Reading(16), Reading(3, "max")])
def test_response_score_is_what_the_policy_window_sees(rng, reading):
    s = rng.uniform(size=40)
    offsets = np.array([0, 1, 5, 25, 40])
    got = response_scores(s, offsets, reading)
    for i in range(4):
        seg = s[offsets[i] : offsets[i + 1]]
        assert np.isclose(got[i], _policy_simulation(seg, reading.window, reading.reduce))


@pytest.mark.parametrize("reading", [Reading(1, "max", "response_end"), Reading(4, "mean", "response_end"),
                                     Reading(4096, "mean", "response_end"), Reading(3, "max", "response_end")])
def test_an_end_of_response_reading_is_what_the_policy_engine_reads_at_the_end(rng, reading):
    """The offline reading a threshold is calibrated on equals the score the policy engine
    puts on its end-of-response alert (threshold 0: it always fires)."""
    from monitor.policy import RequestContext, StaticPackInfo, load_policy_text

    pack = StaticPackInfo.build(4, {"p": {"concept": "deception", "thresholds": {}, "top_features": []}})
    text = ("name: t\nmode: enforce\non_monitor_error: fail_open\nrules:\n  - id: e\n    when: {probe: p, "
            f"threshold: 0.0, window: {{tokens: {reading.window}, reduce: {reading.reduce}}}, at: response_end}}\n"
            "    then: [{alert: {severity: low}}]\n")
    policy = load_policy_text(text, pack)
    s = rng.uniform(size=40)
    offsets = np.array([0, 1, 5, 25, 40])
    got = response_scores(s, offsets, reading)
    for i in range(4):
        mon = policy.new_request("r", RequestContext())
        for j, v in enumerate(s[offsets[i] : offsets[i + 1]]):
            mon.step({"p": float(v)}, j, "t", "response")
        assert np.isclose(got[i], mon.finish().alerts[0].score)
    assert Reading.from_json(reading.to_json()) == reading


def test_store_round_trip(tmp_path, rng):
    from classifiers.features.bank import ResidualBank

    res = [Residuals(ids=np.arange(n, dtype=np.int32),
                     layers={9: rng.normal(size=(n, 6)).astype(np.float16)}) for n in (3, 1, 4)]
    keys = ["a", "b", "c"]
    path = tmp_path / "set1" / chunk_name(0, keys)
    write_chunk(path, keys, res, [9])
    assert not list(tmp_path.rglob("*.tmp"))
    bank = ResidualBank(tmp_path)
    tm = bank.tokens(["c", "a"], 9)
    np.testing.assert_array_equal(tm.offsets, [0, 4, 7])
    np.testing.assert_array_equal(tm.X[:4], res[2].layers[9].astype(np.float32))
    assert bank.missing(["a", "zz"]) == ["zz"]
    with pytest.raises(KeyError):
        bank.tokens(["zz"], 9)
    assert chunk_name(0, keys) != chunk_name(0, ["a", "b", "d"])


def _pairs(n):
    out = []
    for i in range(n):
        for label in (0, 1):
            out.append(Transcript(chat_pair(f"q{i}", f"a{i}-{label}"), label, "deception", "toy", f"g{i}"))
    return out


def test_select_keeps_pairs_together_and_is_deterministic():
    data = _pairs(50)
    a, b = select(data, 21, seed=0), select(data, 21, seed=0)
    assert [t.uid for t in a] == [t.uid for t in b]
    assert 21 <= len(a) <= 22
    groups = {}
    for t in a:
        groups.setdefault(t.group, set()).add(t.label)
    assert all(v == {0, 1} for v in groups.values())
    assert select(data, None) == data


def test_message_key_ignores_source_and_label():
    t1 = Transcript(chat_pair("q", "a"), 1, "bias", "x", "g")
    t2 = Transcript(chat_pair("q", "a"), 0, "bias", "y", "h")
    assert message_key(t1.messages) == message_key(t2.messages)
