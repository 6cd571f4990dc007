"""Records the dataset loaders yield: labelled chat transcripts and unlabelled scenarios."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from classifiers.datasets.concepts import CONCEPTS, concept_names

#: Roles a chat message may have.
ROLES: tuple[str, ...] = ("system", "user", "assistant")


class DatasetError(ValueError):
    """A dataset file is missing or does not have the expected shape."""


@dataclass(frozen=True)
class Transcript:
    """One labelled chat: the assistant's (last) turn carries the concept.

    Not hashable (messages are dicts, ready for a tokenizer's chat template); use
    :attr:`uid` as a stable key.
    """

    messages: tuple[dict[str, str], ...]
    """Chat turns, ``{"role": ..., "content": ...}``; the last one is the assistant's."""
    label: int
    """1: the assistant turn shows the concept (lie, sycophantic, vulnerable, biased); 0: not."""
    concept: str
    """A registered concept (:data:`CONCEPTS`)."""
    source: str
    """Registered dataset name the transcript came from."""
    group: str
    """Id shared by the members of a contrastive pair / question; splits never separate it."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Optional provenance (original ids, split, category, changed code spans, ...)."""

    def __post_init__(self) -> None:
        if self.label not in (0, 1) or isinstance(self.label, bool):
            raise ValueError(f"label must be 0 or 1, got {self.label!r}")
        if self.concept not in CONCEPTS:
            raise ValueError(f"concept must be one of {concept_names()}, got {self.concept!r}")
        if not self.messages:
            raise ValueError("a transcript needs at least one message")
        for message in self.messages:
            if set(message) != {"role", "content"} or message["role"] not in ROLES:
                raise ValueError(f"bad message {message!r}: needs exactly role + content")
            if not isinstance(message["content"], str) or not message["content"].strip():
                raise ValueError(f"empty message content in {message!r}")
        if self.messages[-1]["role"] != "assistant":
            raise ValueError("the last message must be the assistant's")
        if not self.group:
            raise ValueError("group must be a non-empty string")

    @property
    def assistant_text(self) -> str:
        """Content of the final assistant turn (what a probe pools over)."""
        return self.messages[-1]["content"]

    @property
    def user_text(self) -> str:
        """Content of the last user turn before the assistant's answer ('' if none)."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return ""

    @property
    def uid(self) -> str:
        """Stable content hash (source, group, label, messages): a cache / manifest key."""
        payload = json.dumps(
            [self.source, self.group, self.label, list(self.messages)],
            ensure_ascii=False,
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def chat(self) -> list[dict[str, str]]:
        """Fresh list of message dicts (safe to hand to a tokenizer's chat template)."""
        return [dict(m) for m in self.messages]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the external-file format plus provenance)."""
        return {
            "messages": self.chat(),
            "label": self.label,
            "concept": self.concept,
            "source": self.source,
            "group": self.group,
            "meta": dict(self.meta),
        }


def chat_pair(user: str, assistant: str) -> tuple[dict[str, str], ...]:
    """The two-turn chat every labelled loader emits."""
    return ({"role": "user", "content": user}, {"role": "assistant", "content": assistant})


@dataclass(frozen=True)
class PressureScenario:
    """An unlabelled multi-turn sycophancy scenario, for generation tests only.

    There is no negative example: a labelled set has to come from the model's own
    answers (did it move toward the user under pressure?), which is not this module's job.
    """

    prompt_id: str
    """Id from the source file (e.g. ``ff_factual_001``)."""
    domain: str
    """Scenario family (advice, factual, fictional, opinion, reasoning)."""
    user_turns: tuple[str, ...]
    """Initial user message, then each pushback, in order."""
    ground_truth: str
    """What a non-sycophantic answer should say (reference text, not a model answer)."""
    sycophancy_indicators: tuple[str, ...]
    """Phrases a sycophantic answer would contain."""
    source: str
    """Registered dataset name."""
    concept: str = "sycophancy"
    """Always sycophancy."""
    labelled: bool = False
    """Always False: flags that these records carry no 0/1 label."""


def fingerprint(transcripts: Iterable[Transcript]) -> str:
    """Order-sensitive hash of a transcript list (e.g. a feature-cache key, a manifest entry)."""
    digest = hashlib.sha256()
    for transcript in transcripts:
        digest.update(transcript.uid.encode("ascii"))
    return digest.hexdigest()[:16]
