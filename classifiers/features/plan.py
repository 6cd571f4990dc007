"""Which transcripts get their residuals extracted: capped, deterministic, pair-preserving.

Extraction costs one forward per prompt on a shared 2-core CPU, so each dataset is capped.
The selection unit is (group, user turn): both sides of a contrastive pair (and BBQ's three
answers to one context) are always taken together. Units are ordered by a hash of
(seed, unit) -- not of the dataset name, so the two BBQ framings pick the same contexts --
and taken in that order until the cap is reached. The choice does not depend on labels.

Benign chat for calibration comes from the SAE corpus (instruction / chat files, first
user turn and the assistant's answer to it).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from classifiers.datasets import Transcript, load_transcripts

#: Benign chat files of the SAE corpus used as calibration negatives (no tool calls, no
#: red-team dialogues).
BENIGN_FILES: tuple[str, ...] = (
    "sae_corpus_llamafactory/alpaca_en_demo.json",
    "sae_corpus_llamafactory/v1_sft_demo.jsonl",
    "sae_corpus_llamafactory/dpo_en_demo.json",
    "sae_corpus_llamafactory/kto_en_demo.json",
)
BENIGN_SET = "benign_chat"


@dataclass(frozen=True)
class Item:
    """One chat to extract."""

    key: str
    """Content hash of the messages: the cache key (the same chat in two datasets is one item)."""
    messages: tuple[dict[str, str], ...]
    """The chat, last message the assistant's."""


@dataclass(frozen=True)
class SetPlan:
    """One extraction set: a name and its items, in extraction order."""

    name: str
    """Dataset name (or ``benign_chat``); also the cache sub-directory."""
    items: tuple[Item, ...]
    """Chats to extract."""


def message_key(messages: Iterable[Mapping[str, str]]) -> str:
    """Stable hash of the role/content pairs (source and label play no part)."""
    payload = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def _unit_rank(seed: int, transcript: Transcript) -> str:
    return hashlib.sha256(f"{seed}\x00{transcript.group}\x00{transcript.user_text}".encode()).hexdigest()


def select(transcripts: Sequence[Transcript], cap: int | None, seed: int = 0) -> list[Transcript]:
    """Whole (group, user turn) units in hash order until ``cap`` transcripts; file order kept."""
    if cap is None or cap >= len(transcripts):
        return list(transcripts)
    units: dict[str, list[int]] = {}
    for i, t in enumerate(transcripts):
        units.setdefault(_unit_rank(seed, t), []).append(i)
    chosen: list[int] = []
    for rank in sorted(units):
        if len(chosen) >= cap:
            break
        chosen.extend(units[rank])
    return [transcripts[i] for i in sorted(chosen)]


def load_selected(name: str, root: Path, cap: int | None, seed: int = 0) -> list[Transcript]:
    """``load_transcripts(name)`` then :func:`select`."""
    return select(load_transcripts(name, root), cap, seed)


def benign_chats(root: Path, n: int, seed: int = 0) -> list[tuple[dict[str, str], ...]]:
    """``n`` (user, assistant) first exchanges from the benign SAE-corpus chat files."""
    from classifiers.sae.sources import corpus_files, read_source, register_builtin_readers

    if not corpus_files():
        register_builtin_readers()
    pool: list[tuple[dict[str, str], ...]] = []
    for rel in BENIGN_FILES:
        for doc in read_source(root, rel):
            msgs = doc.messages or ()
            if len(msgs) >= 2 and msgs[0]["role"] == "user" and msgs[1]["role"] == "assistant":
                pool.append((dict(msgs[0]), dict(msgs[1])))
    rng = random.Random(seed)
    rng.shuffle(pool)
    seen: set[str] = set()
    out = []
    for chat in pool:
        key = message_key(chat)
        if key not in seen:
            seen.add(key)
            out.append(chat)
        if len(out) >= n:
            break
    return out


def items_of(transcripts: Iterable[Transcript]) -> list[Item]:
    """Unique items (first occurrence order) of some transcripts."""
    out: dict[str, Item] = {}
    for t in transcripts:
        key = message_key(t.messages)
        out.setdefault(key, Item(key, tuple(dict(m) for m in t.messages)))
    return list(out.values())


#: Default caps (transcripts per dataset) chosen for a 2-core CPU, in extraction order.
DEFAULT_CAPS: dict[str, int | None] = {
    "deception_truthfulqa": 1000,
    "deception_repe_facts": None,
    "deception_lie_detector_pairs": 1600,
    "bias_winobias": 1600,
    "bias_bbq": 1600,
    "bias_bbq_stereo_vs_anti": 1600,
    BENIGN_SET: 300,
    "sycophancy_anthropic_opinion": 600,
    "code_sven": 400,
    "code_safecoder_secnew": 400,
    # evaluation-only (held out from every probe); last, so adding it extracted only its chunks
    "sycophancy_pressure_replies": None,
}


def build_plan(root: Path, caps: Mapping[str, int | None] = DEFAULT_CAPS, seed: int = 0) -> list[SetPlan]:
    """One :class:`SetPlan` per entry of ``caps``, in that order."""
    plans = []
    for name, cap in caps.items():
        if name == BENIGN_SET:
            chats = benign_chats(root, cap or 300, seed)
            items = [Item(message_key(c), c) for c in chats]
        else:
            items = items_of(load_selected(name, root, cap, seed))
        plans.append(SetPlan(name, tuple(items)))
    return plans
