"""Parse YAML while keeping a map back to line numbers.

``yaml.compose`` gives a node tree whose marks carry line numbers; the Python data is
constructed from that same tree, so a path of keys/indices (a pydantic error location)
can be followed through the nodes to the line the user has to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from monitor.policy.issues import Loc, PolicyIssue


@dataclass(frozen=True)
class YamlDoc:
    """Parsed YAML: the data and the node tree it was built from."""

    data: Any
    root: yaml.Node | None


class YamlSyntaxError(Exception):
    """The text is not valid YAML; ``issue`` says where."""

    def __init__(self, issue: PolicyIssue) -> None:
        self.issue = issue
        super().__init__(str(issue))


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no stubs
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.2; PyYAML's 1.1 rules
    want a dot, ``1.0e-3``, and would hand the policy a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document (safe loader) keeping its node tree."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_syntax_issue(exc, source)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(PolicyIssue(source, 1, "(yaml)", f"invalid YAML: {exc}")) from exc
    finally:
        loader.dispose()
    return YamlDoc(data=data, root=root)


_UNCLOSED = ("while scanning a quoted scalar", "while parsing a flow")


def _syntax_issue(exc: yaml.MarkedYAMLError, source: str) -> PolicyIssue:
    """Point at the line to fix: for an unclosed quote or bracket that is where it was
    opened (the context), otherwise where the parser noticed the problem."""
    problem = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    context = exc.context_mark.line + 1 if exc.context_mark is not None else None
    unclosed = bool(exc.context) and str(exc.context).startswith(_UNCLOSED)
    line = (context if unclosed else problem) or context or problem or 1
    what = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "syntax error"
    if unclosed and problem is not None and problem != line:
        what += f" (noticed at line {problem})"
    elif context is not None and context != line and not unclosed:
        what += f" (see also line {context})"
    return PolicyIssue(source, line, "(yaml)", f"invalid YAML: {what}")


def line_of(root: yaml.Node | None, loc: Loc, at_key: bool = False) -> int:
    """1-based line for a location; falls back to the closest existing parent.

    With ``at_key`` the line of the last key is returned (an unknown key). When the
    location does not exist (a missing field), the line of the key that holds the
    deepest existing mapping is returned (``when:`` for ``rules.0.when.probe``).
    """
    if root is None:
        return 1
    node: yaml.Node = root
    owner: yaml.Node | None = None  # the key node through which `node` was reached
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = _find_key(node, part)
            if found is None:
                return _line(owner or node)
            key, value = found
            if last and at_key:
                return _line(key)
            owner, node = key, value
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return _line(owner or node)
            owner, node = None, node.value[part]
        else:
            return _line(owner or node) if not last else _line(node)
    return _line(node)


def duplicate_keys(root: yaml.Node | None) -> list[tuple[Loc, int, int]]:
    """``(loc of the mapping key, line, first line)`` for every repeated mapping key
    (PyYAML silently keeps the last one; in a policy that is always a mistake)."""
    out: list[tuple[Loc, int, int]] = []
    _walk_duplicates(root, (), out)
    return out


def _walk_duplicates(node: yaml.Node | None, loc: Loc, out: list[tuple[Loc, int, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                name = str(key.value)
                if name in seen:
                    out.append((loc + (name,), _line(key), seen[name]))
                else:
                    seen[name] = _line(key)
                _walk_duplicates(value, loc + (name,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_duplicates(item, loc + (i,), out)


def _find_key(node: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    found: tuple[yaml.Node, yaml.Node] | None = None
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and str(key.value) == name:
            found = (key, value)  # the last one wins, as in the constructed data
    return found


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1
