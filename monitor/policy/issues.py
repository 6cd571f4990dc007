"""Validation problems found in a policy, and how they are reported.

Validation happens in three layers (YAML syntax, the pydantic schema, semantic checks
against the guard pack). Every layer reports :class:`Issue` objects whose ``loc`` is a
path into the YAML document (``("rules", 0, "when", "probe")``); the loader turns them
into :class:`PolicyIssue` objects with a file name and a 1-based line number, printed as
``FILE:LINE: field.path: what was expected``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """One problem at a location in the policy document (no line number yet)."""

    loc: Loc
    """Path into the document: mapping keys (str) and list indices (int)."""
    message: str
    """What was expected, e.g. ``"unknown probe 'decption'; known: bias, deception"``."""
    at_key: bool = False
    """Point at the key's line rather than the value's (unknown keys)."""


@dataclass(frozen=True)
class PolicyIssue:
    """A problem with a file name and line number, ready to print."""

    file: str
    line: int
    """1-based line number in ``file``."""
    path: str
    """Dotted field path (``rules.0.when.threshold``); ``(yaml)`` for syntax errors,
    ``(root)`` for the document itself."""
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


def format_loc(loc: Loc) -> str:
    """``("rules", 0, "when")`` -> ``"rules.0.when"``; the empty path is ``"(root)"``."""
    return ".".join(str(part) for part in loc) if loc else "(root)"


class PolicyError(Exception):
    """A policy file failed validation; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues: tuple[PolicyIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class SemanticError(Exception):
    """Raised by checks that work on a parsed policy (no line numbers yet)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("; ".join(f"{format_loc(i.loc)}: {i.message}" for i in self.issues))
