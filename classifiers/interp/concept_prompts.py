"""Concept-eliciting prompts and neutral text from ``../shared/datasets``.

A concept-eliciting prompt is a positive (label 1) transcript of the concept's first
``train`` dataset, minus its assistant answer, plus the first words of that answer as the
start of the assistant turn (``prefix_words``, at most half of the answer): the model is
put on the concept's track and continues from there. Only the continuation is scored.

Neutral text is plain wiki/web text from the SAE corpus (``wiki_demo.txt``), tokenized
without the chat template, for perplexity.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NEUTRAL_FILE = "sae_corpus_llamafactory/wiki_demo.txt"


@dataclass(frozen=True)
class ConceptPrompt:
    label: str
    messages: tuple[dict[str, str], ...]
    """Chat up to (not including) the assistant's answer."""
    assistant_prefix: str

    def token_ids(self, tokenizer: Any) -> list[int]:
        from monitor.engine.chat import render_chat

        ids = render_chat(tokenizer, list(self.messages))
        if self.assistant_prefix:
            ids += list(tokenizer(self.assistant_prefix, add_special_tokens=False)["input_ids"])
        return ids


def concept_dataset(concept: str) -> str:
    from classifiers.datasets import dataset_names

    names = dataset_names(concept=concept, role="train", labelled=True)
    if not names:
        raise ValueError(f"no labelled training dataset for concept {concept!r}")
    return names[0]


def concept_prompts(concept: str, root: str | Path, n: int = 4, seed: int = 0, prefix_words: int = 6,
                    max_user_chars: int = 600, dataset: str | None = None) -> list[ConceptPrompt]:
    from classifiers.datasets import load_transcripts

    name = dataset or concept_dataset(concept)
    pos = [t for t in load_transcripts(name, root) if t.label == 1 and len(t.user_text) <= max_user_chars]
    if not pos:
        raise ValueError(f"{name}: no positive transcripts with a user turn of <= {max_user_chars} characters")
    pos.sort(key=lambda t: t.uid)
    picked = random.Random(seed).sample(pos, min(n, len(pos)))
    out = []
    for t in picked:
        text = t.assistant_text
        ends = [m.end() for m in re.finditer(r"\S+", text)]
        k = min(prefix_words, len(ends) // 2)
        out.append(ConceptPrompt(f"{name}:{t.uid[:8]}", tuple(t.chat()[:-1]), text[: ends[k - 1]] if k else ""))
    return out


def neutral_texts(root: str | Path, n: int = 4, max_chars: int = 500, min_chars: int = 200) -> list[str]:
    path = Path(root) / NEUTRAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"neutral text file not found: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if len(line) >= min_chars:
                out.append(line[:max_chars])
                if len(out) >= n:
                    break
    if not out:
        raise ValueError(f"{path}: no line of >= {min_chars} characters")
    return out
