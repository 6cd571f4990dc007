"""Shared framing for the vulnerable-vs-fixed code sets (SVEN, SafeCoder).

user: a request for the function that never mentions security, the CWE, or which version
it is (SafeCoder's functional description where it is clean, else "Write a <language>
function named `<name>`."); assistant: the code in a fenced block. Label 1 = vulnerable
(code before the fix), 0 = fixed. Both versions of a function share the prompt and the
group; pairs whose two versions are identical are dropped. ``meta["changed_spans"]`` holds
the ``[start, end)`` character spans of the assistant content that the fix deleted (label 1)
or added (label 0), from the raw files' ``char_changes``, for token-level labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from classifiers.datasets.files import field, read_jsonl, require_file
from classifiers.datasets.types import DatasetError, Transcript, chat_pair

log = structlog.get_logger(__name__)

# extension -> (language name for the prompt, fence tag)
LANGUAGES: dict[str, tuple[str, str]] = {
    "py": ("Python", "python"),
    "c": ("C", "c"),
    "h": ("C", "c"),
    "cpp": ("C++", "cpp"),
    "cc": ("C++", "cpp"),
    "C": ("C++", "cpp"),
    "js": ("JavaScript", "javascript"),
    "jsx": ("JavaScript", "jsx"),
    "rb": ("Ruby", "ruby"),
    "go": ("Go", "go"),
    "java": ("Java", "java"),
}
# A prompt must not tell the model (or the probe) which version it is.
_LEAKY = re.compile(r"vulnerab|\bcwe\b|cwe-\d|\bfix(ed|es)?\b|\bpatch(ed)?\b|\bexploit", re.I)


def prompt_for(lang: str, func_name: str, description: str | None) -> str:
    """The user turn: the functional description when clean, else a name-only request."""
    if description and not _LEAKY.search(description):
        return " ".join(description.split())
    language = LANGUAGES.get(lang, (lang, lang))[0]
    if not func_name or func_name.startswith("("):
        return f"Write a {language} function."
    return f"Write a {language} function named `{func_name}`."


def fence(lang: str, code: str) -> tuple[str, int]:
    """Fenced assistant content and the offset of the code inside it."""
    tag = LANGUAGES.get(lang, (lang, lang))[1]
    head = f"```{tag}\n"
    return f"{head}{code}\n```", len(head)


def _raw_changes(root: Path, raw_glob: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(code before, code after) -> char_changes, from the verbatim upstream files."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(Path(root).glob(raw_glob)):
        for lineno, row in read_jsonl(path):
            where = f"{path}:{lineno}"
            key = (field(row, "func_src_before", where), field(row, "func_src_after", where))
            out[key] = row.get("char_changes") or {}
    return out


def _spans(changes: list[dict[str, Any]], code: str, offset: int) -> list[list[int]]:
    spans = []
    for change in changes:
        start, end = int(change["char_start"]), int(change["char_end"])
        if 0 <= start < end <= len(code):
            spans.append([start + offset, end + offset])
    return spans


def load_code_pairs(root: Path, name: str, flat_file: str, raw_glob: str) -> Iterator[Transcript]:
    """Transcripts for every non-identical vulnerable/fixed pair of a flat code file."""
    path = require_file(root, flat_file)
    pairs: dict[str, dict[int, dict[str, Any]]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        label = field(row, "label", where)
        if label not in (0, 1):
            raise DatasetError(f"{where}: label must be 0 or 1, got {label!r}")
        pairs.setdefault(field(row, "pair_id", where), {})[label] = row
    raw = _raw_changes(root, raw_glob)
    identical = 0
    for pair_id, members in pairs.items():
        if set(members) != {0, 1}:
            raise DatasetError(f"{path}: pair {pair_id!r} lacks a vulnerable or a fixed member")
        before, after = members[1]["code"], members[0]["code"]
        if before.strip() == after.strip():
            identical += 1
            continue
        changes = raw.get((before, after), {})
        first = members[1]
        lang = first["lang"]
        user = prompt_for(lang, first.get("func_name", ""), first.get("description"))
        for label, code, kind in ((1, before, "deleted"), (0, after, "added")):
            code = code.rstrip()
            content, offset = fence(lang, code)
            meta = {
                "pair_id": pair_id,
                "split": first.get("split"),
                "cwe": first.get("cwe"),
                "lang": lang,
                "changed_spans": _spans(changes.get(kind, []), code, offset),
            }
            yield Transcript(chat_pair(user, content), label, "unsafe_code", name, pair_id, meta)
    log.info("dataset_loaded", dataset=name, pairs=len(pairs), dropped_identical=identical)
