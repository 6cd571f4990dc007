"""Users' own labelled chats for ``saeguard eval-probes --data FILE.jsonl``.

One JSON object per line::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "label": 0, "concept": "deception"}

``messages``: a non-empty list of ``{"role", "content"}`` objects (roles system, user,
assistant; string content) whose last message is the assistant's, since the probe reads the
assistant turn. ``label``: the integer 0 or 1. ``concept`` (optional): one of the known
concepts. An optional ``id`` (string or integer) is kept. Other keys -- metadata such as
``source`` or ``meta``, on a line or in a message -- are ignored and listed once in a
warning, because real data sets carry them; a key that looks like a misspelling of a known
one (``lable``, ``concpet``, ``contnet``) is an error, so a typo never silently drops a
label or a concept. Blank lines are skipped. Every problem is
reported as ``file:line: what is wrong``; up to 20 are collected before raising.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import ArrayLike

from classifiers.datasets.concepts import CONCEPTS
from classifiers.datasets.types import ROLES
from classifiers.probes.metrics import auprc, auroc, auroc_interval, tpr_at_fpr

_ALLOWED_KEYS = {"messages", "label", "concept", "id"}
_MESSAGE_KEYS = {"role", "content"}
_MAX_ERRORS = 20

log = structlog.get_logger(__name__)


class ExternalDataError(ValueError):
    """The user's file is not in the expected format; the message lists file:line errors."""


@dataclass(frozen=True)
class ExternalExample:
    """One validated line of a user's file."""

    messages: tuple[dict[str, str], ...]
    """The chat, last message from the assistant."""
    label: int
    """0 or 1."""
    concept: str | None
    """The line's concept, if it named one."""
    line: int
    """1-based line number in the file."""
    id: str | None = None
    """The line's optional id."""

    def chat(self) -> list[dict[str, str]]:
        """Fresh list of message dicts for a chat template."""
        return [dict(m) for m in self.messages]

    @property
    def assistant_text(self) -> str:
        """Content of the final assistant turn."""
        return self.messages[-1]["content"]


def _extra_keys(keys: Iterable[str], known: set[str], prefix: str, ignored: set[str]) -> str | None:
    """An error for a key that looks like a misspelt known key; other extras go to ``ignored``
    (as ``prefix + key``, e.g. ``messages[].name``)."""
    for key in sorted(set(keys) - known):
        near = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.75)
        if near:
            return f"unknown key(s) [{key!r}] (did you mean {near[0]!r}?)"
        ignored.add(f"{prefix}{key}")
    return None


def _check_messages(messages: Any, ignored: set[str]) -> str | None:
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list'
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object with role and content"
        problem = _extra_keys(message, _MESSAGE_KEYS, "messages[].", ignored)
        if problem:
            return f"messages[{i}]: {problem}"
        if not set(message) >= _MESSAGE_KEYS:
            return f"messages[{i}] must have the keys role and content, got {sorted(message)}"
        if message["role"] not in ROLES:
            return f"messages[{i}].role must be one of {list(ROLES)}, got {message['role']!r}"
        if not isinstance(message["content"], str):
            return f"messages[{i}].content must be a string"
    if messages[-1]["role"] != "assistant":
        return "the last message must have role assistant (the probe reads the assistant turn)"
    if not messages[-1]["content"].strip():
        return "the assistant message is empty"
    return None


def _check_line(obj: Any, concepts: Collection[str], ignored: set[str] | None = None) -> str | None:
    if not isinstance(obj, dict):
        return "expected a JSON object"
    ignored = set() if ignored is None else ignored
    problem = _extra_keys(obj, _ALLOWED_KEYS, "", ignored)
    if problem:
        return problem
    if "messages" not in obj:
        return 'missing "messages"'
    if "label" not in obj:
        return 'missing "label"'
    problem = _check_messages(obj["messages"], ignored)
    if problem:
        return problem
    label = obj["label"]
    if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):
        return f'"label" must be the integer 0 or 1, got {label!r}'
    concept = obj.get("concept")
    if concept is not None and concept not in concepts:
        return f'"concept" must be one of {list(concepts)}, got {concept!r}'
    if "id" in obj and not isinstance(obj["id"], (str, int)):
        return '"id" must be a string or an integer'
    return None


def read_external(path: str | Path, concepts: Collection[str] = CONCEPTS) -> list[ExternalExample]:
    """Validate and read a user's JSONL file; raise ExternalDataError listing the problems."""
    path = Path(path)
    if not path.is_file():
        raise ExternalDataError(f"{path}: file not found")
    errors: list[str] = []
    examples: list[ExternalExample] = []
    ignored: set[str] = set()
    with path.open("rb") as fh:
        for lineno, raw_bytes in enumerate(fh, start=1):
            try:  # a byte-order mark on the first line is tolerated
                raw = raw_bytes.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                errors.append(f"{path}:{lineno}: not UTF-8 text (byte {exc.start}); save the file as UTF-8")
                if len(errors) >= _MAX_ERRORS:
                    break
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                errors.append(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
            else:
                problem = _check_line(obj, concepts, ignored)
                if problem:
                    errors.append(f"{path}:{lineno}: {problem}")
                elif not errors:
                    examples.append(
                        ExternalExample(
                            messages=tuple({"role": m["role"], "content": m["content"]}
                                           for m in obj["messages"]),
                            label=obj["label"],
                            concept=obj.get("concept"),
                            line=lineno,
                            id=None if "id" not in obj else str(obj["id"]),
                        )
                    )
            if len(errors) >= _MAX_ERRORS:
                errors.append(f"{path}: stopped after {_MAX_ERRORS} errors")
                break
    if errors:
        raise ExternalDataError("\n".join(errors))
    if not examples:
        raise ExternalDataError(f"{path}: no examples (the file is empty)")
    if ignored:
        log.warning("external_keys_ignored", file=str(path), keys=sorted(ignored))
    return examples


def by_concept(
    examples: Iterable[ExternalExample], default_concept: str | None = None
) -> dict[str, list[ExternalExample]]:
    """Group examples by concept; lines without one take ``default_concept`` (``--concept``).

    With ``default_concept`` set, lines naming another concept are left out (the user asked
    for one concept). Lines with no concept and no default raise ExternalDataError.
    """
    out: dict[str, list[ExternalExample]] = {}
    missing: list[int] = []
    for example in examples:
        concept = example.concept or default_concept
        if concept is None:
            missing.append(example.line)
            continue
        if default_concept is not None and concept != default_concept:
            continue
        out.setdefault(concept, []).append(example)
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise ExternalDataError(
            f"lines {shown}{' ...' if len(missing) > 10 else ''} name no concept; "
            'add a "concept" field or pass --concept'
        )
    return out


def report(scores: ArrayLike, labels: ArrayLike) -> dict[str, Any]:
    """``{"n", "auroc", "auprc", "tpr_at_1pct_fpr", "auroc_ci95"}``.

    ``auroc_ci95`` is ``[low, high]``, the bootstrap 95% interval of the AUROC
    (:func:`.metrics.auroc_interval`). The metrics are None (JSON null) when the labels
    hold only one class: they are undefined then.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(np.int64)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    result: dict[str, Any] = {"n": int(s.size)}
    if 0 < y.sum() < y.size:
        result |= {"auroc": auroc(s, y), "auprc": auprc(s, y), "tpr_at_1pct_fpr": tpr_at_fpr(s, y),
                   "auroc_ci95": list(auroc_interval(s, y))}
    else:
        result |= {"auroc": None, "auprc": None, "tpr_at_1pct_fpr": None, "auroc_ci95": None}
    return result


def report_by_concept(
    scores: Mapping[str, ArrayLike], labels: Mapping[str, ArrayLike]
) -> dict[str, dict[str, Any]]:
    """:func:`report` for each concept (the per-concept form of the last JSON line)."""
    return {concept: report(scores[concept], labels[concept]) for concept in scores}
