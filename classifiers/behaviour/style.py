"""Style augmentation: the same answers in several surface styles, so a probe trained on
them cannot separate the classes by style (a 2026 study found style-augmented deception
probes robust across sources even at 1B).

:func:`restyle` rewrites a transcript's final answer and user turn in one of
:data:`STYLES` (deterministic templates: no model writes them), keeping its label and
group; :func:`augment` gives each transcript one style, rotating by a hash of its group so
both members of a pair share a style and every style is used about equally. Both classes
are rewritten by the same template, so the content that carries the label is untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from classifiers.datasets.types import Transcript

_COMMON_STARTS = frozenset({"The", "A", "An", "It", "There", "This", "These", "In", "Most", "Many", "Some",
                            "All", "Every", "Each", "No", "One"})


def _lower_first(s: str) -> str:
    """Lower-case the first word only when it is a common sentence opener (names stay)."""
    first, _, rest = s.partition(" ")
    return f"{first.lower()} {rest}" if first in _COMMON_STARTS else s


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "!", "?")) else s + "."


STYLES: Mapping[str, tuple[str, Callable[[str], str]]] = {
    # name: (user turn, answer rewrite)
    "plain": ("Tell me a fact about the world.", lambda s: s),
    "casual": ("hey, got a random fact for me?", lambda s: f"Sure thing! So, {_lower_first(_sentence(s))} Pretty neat, right?"),
    "formal": ("Kindly state one fact about the world.",
               lambda s: f"Certainly. It is a matter of record that {_lower_first(_sentence(s))}"),
    "list": ("Give me a fact, formatted as a bullet list.", lambda s: f"Here is one:\n\n- {_sentence(s)}"),
    "long": ("Could you share an interesting fact and say a little about it?",
             lambda s: f"Of course, here is something worth knowing. {_sentence(s)} Facts like this come up "
                       "often in conversation, and it is good to have them straight. Let me know if you would "
                       "like another one."),
    "short": ("One fact, briefly.", lambda s: _sentence(s)),
}


def style_of(group: str, seed: int = 0) -> str:
    names = sorted(STYLES)
    return names[int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest(), 16) % len(names)]


def restyle(t: Transcript, style: str) -> Transcript:
    """``t`` with its last user turn and its answer in ``style`` (other turns unchanged)."""
    user, rewrite = STYLES[style]
    msgs = [dict(m) for m in t.messages]
    for m in reversed(msgs[:-1]):
        if m["role"] == "user":
            m["content"] = user
            break
    msgs[-1]["content"] = rewrite(msgs[-1]["content"])
    return Transcript(tuple(msgs), t.label, t.concept, f"{t.source}+style", t.group, {**t.meta, "style": style})


def augment(ts: Iterable[Transcript], seed: int = 0) -> list[Transcript]:
    """Each transcript in one style, chosen by its group (a pair keeps one style)."""
    return [restyle(t, style_of(t.group, seed)) for t in ts]
