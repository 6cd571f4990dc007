"""Prompt files for the toolkit and how a prompt becomes token ids.

Accepted files: ``.txt`` (one prompt per non-empty line) or ``.jsonl`` with one object per
line holding ``text``, ``prompt`` or ``messages`` (a chat). Pair files (contrastive
steering, patching) are ``.jsonl`` with ``pos`` and ``neg`` (strings or chats).
A plain string prompt is rendered as one user turn with the chat template when
``chat=True`` (what a chat service sends), or tokenized as raw text otherwise (e.g. for
next-token attribution on ``John says ... John feels``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Prompt = str | list[dict[str, str]]


class PromptFileError(ValueError):
    """A prompt file is missing or malformed (one line, names the file and line)."""


def _item(obj: Any, where: str, keys: Sequence[str] = ("text", "prompt", "messages")) -> Prompt:
    if isinstance(obj, str) and obj.strip():
        return obj
    if isinstance(obj, list) and obj and all(isinstance(m, Mapping) for m in obj):
        return [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in obj]
    if isinstance(obj, Mapping):
        for k in keys:
            if k in obj:
                return _item(obj[k], where)
    raise PromptFileError(f"{where}: expected a string, a chat (list of messages) or an object with one of {list(keys)}")


def read_prompts(path: str | Path) -> list[Prompt]:
    p = Path(path)
    if not p.is_file():
        raise PromptFileError(f"prompt file not found: {p}")
    lines = p.read_text(encoding="utf-8").splitlines()
    if p.suffix != ".jsonl":
        out: list[Prompt] = [line for line in lines if line.strip()]
    else:
        out = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(_item(json.loads(line), f"{p}:{n}"))
            except json.JSONDecodeError as exc:
                raise PromptFileError(f"{p}:{n}: invalid JSON ({exc.msg})") from exc
    if not out:
        raise PromptFileError(f"{p}: no prompts")
    return out


def read_pairs(path: str | Path) -> list[tuple[Prompt, Prompt]]:
    p = Path(path)
    if not p.is_file():
        raise PromptFileError(f"pair file not found: {p}")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{where}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, Mapping) or "pos" not in obj or "neg" not in obj:
            raise PromptFileError(f'{where}: expected {{"pos": ..., "neg": ...}}')
        out.append((_item(obj["pos"], where), _item(obj["neg"], where)))
    if not out:
        raise PromptFileError(f"{p}: no pairs")
    return out


def to_ids(tokenizer: Any, prompt: Prompt, chat: bool = True) -> list[int]:
    """Token ids for a prompt: chats always use the template; strings when ``chat``."""
    from monitor.engine.chat import render_chat

    if isinstance(prompt, list):
        return render_chat(tokenizer, prompt)
    if chat:
        return render_chat(tokenizer, [{"role": "user", "content": prompt}])
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def content_start(tokenizer: Any, prompt: Prompt, chat: bool = True) -> int:
    """Index of the first token of the last message's content (0 for raw text), so that
    statistics skip the chat template and its default system prompt: the length of the
    common prefix of two renderings that differ only in that content."""
    if not chat and isinstance(prompt, str):
        return 0
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    other = [dict(m) for m in msgs]
    other[-1]["content"] = "§" if msgs[-1]["content"] != "§" else "¶"
    a, b = to_ids(tokenizer, msgs, True), to_ids(tokenizer, other, True)
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def label(prompt: Prompt, n: int = 60) -> str:
    """Short display form of a prompt."""
    text = prompt if isinstance(prompt, str) else " | ".join(m["content"] for m in prompt)
    return text if len(text) <= n else text[: n - 1] + "…"
