"""Readers that turn the shared SAE-corpus files into chat messages or plain text.

One reader per file format, in an explicit registry keyed by the file's path relative to
the datasets root. A reader yields :class:`RawDoc` records: either ``messages`` (rendered
later with the model's chat template) or ``text`` (web/wiki text, tokenized as is).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RawDoc:
    """One corpus document before tokenization."""

    source: str
    """File (relative to the datasets root) or training-set name it came from."""
    messages: tuple[dict[str, str], ...] | None = None
    """Chat turns (role system/user/assistant); None for plain text."""
    text: str | None = None
    """Plain text; None for chats."""


Reader = Callable[[Path], Iterator[RawDoc]]
_READERS: dict[str, Reader] = {}


def register_reader(relpath: str, reader: Reader) -> None:
    """Register the reader for one corpus file; refuses duplicates."""
    if relpath in _READERS:
        raise ValueError(f"corpus reader already registered for {relpath!r}")
    _READERS[relpath] = reader


def corpus_files() -> tuple[str, ...]:
    return tuple(_READERS)


def read_source(root: Path, relpath: str) -> Iterator[RawDoc]:
    return _READERS[relpath](root / relpath)


def _msgs(source: str, turns: list[tuple[str, str]]) -> RawDoc | None:
    out = tuple({"role": r, "content": c.strip()} for r, c in turns if c and c.strip())
    return RawDoc(source=source, messages=out) if out else None


def _part_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("value") or p.get("text") or "") for p in content if isinstance(p, dict)
        )
    return ""


_ROLE_MAP = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "user",
    "tool": "user",
}


def _alpaca(path: Path) -> Iterator[RawDoc]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        doc = _msgs(path.name, [("user", user), ("assistant", row["output"])])
        if doc:
            yield doc


def _sharegpt(path: Path) -> Iterator[RawDoc]:
    """dpo / glaive tool-call files: ``conversations`` [+ ``chosen``]; tool calls become turns."""
    for row in json.loads(path.read_text(encoding="utf-8")):
        turns = [(_ROLE_MAP.get(t["from"], "user"), t["value"]) for t in row["conversations"]]
        if isinstance(row.get("chosen"), dict):
            turns.append(
                (_ROLE_MAP.get(row["chosen"]["from"], "assistant"), row["chosen"]["value"])
            )
        if row.get("tools"):
            turns.insert(0, ("system", f"You can call these functions:\n{row['tools']}"))
        doc = _msgs(path.name, turns)
        if doc:
            yield doc


def _messages_json(path: Path) -> Iterator[RawDoc]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        doc = _msgs(
            path.name,
            [(_ROLE_MAP.get(m["role"], "user"), _part_text(m["content"])) for m in row["messages"]],
        )
        if doc:
            yield doc


def _messages_jsonl(path: Path) -> Iterator[RawDoc]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            doc = _msgs(
                path.name,
                [
                    (_ROLE_MAP.get(m["role"], "user"), _part_text(m["content"]))
                    for m in row["messages"]
                ],
            )
            if doc:
                yield doc


def _text_jsonl(path: Path) -> Iterator[RawDoc]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and json.loads(line).get("text", "").strip():
            yield RawDoc(source=path.name, text=json.loads(line)["text"])


def _text_lines(path: Path) -> Iterator[RawDoc]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield RawDoc(source=path.name, text=line.strip())


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_rlhf(path: Path) -> Iterator[RawDoc]:
    """Anthropic hh-rlhf ``chosen`` transcripts (``\\n\\nHuman: ... \\n\\nAssistant: ...``)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        parts = _HH_TURN.split(json.loads(line)["chosen"])
        turns = [
            ("user" if who == "Human" else "assistant", body)
            for who, body in zip(parts[1::2], parts[2::2], strict=True)
        ]
        doc = _msgs("hh_rlhf", turns)
        if doc:
            yield doc


def register_builtin_readers() -> None:
    """Register the readers for the files of ``sae_corpus_*`` (call once)."""
    lf = "sae_corpus_llamafactory/"
    register_reader(lf + "alpaca_en_demo.json", _alpaca)
    register_reader(lf + "dpo_en_demo.json", _sharegpt)
    register_reader(lf + "glaive_toolcall_en_demo.json", _sharegpt)
    register_reader(lf + "kto_en_demo.json", _messages_json)
    register_reader(lf + "reason_tool_use_demo_50.jsonl", _messages_jsonl)
    register_reader(lf + "v1_sft_demo.jsonl", _messages_jsonl)
    register_reader(lf + "c4_demo.jsonl", _text_jsonl)
    register_reader(lf + "wiki_demo.txt", _text_lines)
    register_reader("sae_corpus_hh_rlhf_extra/harmless-base_test.jsonl", _hh_rlhf)
