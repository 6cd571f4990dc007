"""Per-request runtime state of conditions: score windows and run counters.

Semantics (documented for policy authors in ``policies/README.md``):

- A probe condition only looks at positions in its ``scope``. At other positions it is
  false and its state (window, run counter) is left untouched.
- At an in-scope position the probe's score is appended to the window (the last
  ``window.tokens`` in-scope scores; fewer at the start of the scope), pooled with
  ``mean`` or ``max``, and compared with the threshold: ``pooled >= threshold``.
- ``min_consecutive``: the condition is true once that comparison has passed at that
  many in-scope positions in a row (a failing position resets the run).
- ``any``/``all`` combine the truth values of their children *at the same position*;
  every leaf is updated at every position (no short-circuit), so windows never skip.
"""

from __future__ import annotations

from collections import deque

from monitor.policy.compiled import CompiledCondition, CompiledLeaf


class LeafState:
    """Window and run counter of one probe condition within one request."""

    __slots__ = ("window", "run", "value", "true")

    def __init__(self, size: int) -> None:
        self.window: deque[float] = deque(maxlen=size)
        self.run = 0
        """In-scope positions in a row at which the pooled score passed."""
        self.value = 0.0
        """Pooled score at the last in-scope position."""
        self.true = False
        """Truth value at the current position."""

    def update(self, leaf: CompiledLeaf, score: float) -> bool:
        """Push ``score`` (an in-scope position) and return the condition's truth."""
        window = self.window
        window.append(score)
        value = max(window) if leaf.reduce == "max" else sum(window) / len(window)
        self.value = value
        self.run = self.run + 1 if value >= leaf.threshold else 0
        self.true = self.run >= leaf.min_consecutive
        return self.true

    def skip(self) -> bool:
        """An out-of-scope position: false, state kept."""
        self.true = False
        return False


def evaluate(cond: CompiledCondition, states: list[LeafState]) -> bool:
    """Combine the leaves' current truth values (after every leaf was updated)."""
    if isinstance(cond, CompiledLeaf):
        return states[cond.slot].true
    if cond.op == "any":
        return any(evaluate(c, states) for c in cond.children)
    return all(evaluate(c, states) for c in cond.children)


def in_scope(leaf: CompiledLeaf, scope: str) -> bool:
    """Whether a position of ``scope`` (prompt/response) is one the leaf looks at."""
    return leaf.scope == "both" or leaf.scope == scope
