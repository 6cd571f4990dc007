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
    """Parse one YAML document (safe loader) keeping its node tree.

    Whatever the text, the only exception is :class:`YamlSyntaxError` with a line:
    PyYAML's own errors, a character YAML does not allow (checked when the loader is
    created), nesting too deep for the recursive parser, and a scalar whose value
    cannot be built (an integer of more than 4300 digits raises ``ValueError``).
    """
    loader: _Loader | None = None
    root: yaml.Node | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_syntax_issue(exc, source)) from exc
    except yaml.reader.ReaderError as exc:
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        line = text.count("\n", 0, exc.position) + 1 if isinstance(text, str) else 1
        message = f"invalid YAML: {exc.reason} (character {char!r})"
        raise YamlSyntaxError(PolicyIssue(source, line, "(yaml)", message)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(PolicyIssue(source, 1, "(yaml)", f"invalid YAML: {exc}")) from exc
    except RecursionError as exc:
        raise YamlSyntaxError(PolicyIssue(source, _deepest_line(text), "(yaml)",
                                          "invalid YAML: nested too deeply")) from exc
    except (ValueError, OverflowError) as exc:
        line = _bad_scalar_line(loader, root) if loader is not None and root is not None else 1
        raise YamlSyntaxError(PolicyIssue(source, line, "(yaml)", f"invalid value: {exc}")) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDoc(data=data, root=root)


def _deepest_line(text: str, limit: int = 100) -> int:
    """The line where bracket/indent nesting first passes ``limit`` (else the deepest)."""
    depth = best = 0
    best_line = line = 1
    for ch in text:
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
            if depth > limit:
                return line
        elif ch in "]}":
            depth -= 1
    return best_line


def _bad_scalar_line(loader: _Loader, root: yaml.Node) -> int:
    """Line of the first scalar whose value cannot be constructed."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node, deep=True)
            except Exception:
                return _line(node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                stack.extend((value, key))
    return 1


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
        if isinstance(node, yaml.MappingNode):
            found = _find_key(node, str(part))  # an int part here is a non-string key (`5: x`)
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
    _walk_duplicates(root, (), out, set())
    return out


def _walk_duplicates(
    node: yaml.Node | None, loc: Loc, out: list[tuple[Loc, int, int]], visited: set[int]
) -> None:
    # an alias is the same node object as its anchor: walk it once (nested aliases,
    # a "billion laughs" file, would otherwise take exponential time)
    if node is None or id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                name = str(key.value)
                if name in seen:
                    out.append((loc + (name,), _line(key), seen[name]))
                else:
                    seen[name] = _line(key)
                _walk_duplicates(value, loc + (name,), out, visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_duplicates(item, loc + (i,), out, visited)


def _find_key(node: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    found: tuple[yaml.Node, yaml.Node] | None = None
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and str(key.value) == name:
            found = (key, value)  # the last one wins, as in the constructed data
    return found


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1
