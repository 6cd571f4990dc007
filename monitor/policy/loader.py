"""Load policy files: YAML -> schema -> semantic checks -> :class:`CompiledPolicy`.

Every problem is reported as a :class:`~monitor.policy.issues.PolicyIssue`
(``FILE:LINE: field.path: what was expected``); all problems of a file are collected,
not just the first. The policy version is the sha256 hex digest of the file's bytes.
"""

from __future__ import annotations

import difflib
import hashlib
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from monitor.policy.compiled import CompiledPolicy, compile_policy
from monitor.policy.issues import Issue, Loc, PolicyError, PolicyIssue, SemanticError
from monitor.policy.packinfo import PackInfo
from monitor.policy.schema import CONDITION_TAGS, Policy
from monitor.policy.validate import policy_warnings, validate_policy
from monitor.policy.yamlmap import YamlDoc, YamlSyntaxError, duplicate_keys, line_of, parse_yaml


def policy_version(data: bytes) -> str:
    """The version of a policy file: sha256 hex digest of its bytes."""
    return hashlib.sha256(data).hexdigest()


def check_policy_text(
    text: str | bytes, pack: PackInfo | None, source: str = "<string>"
) -> list[PolicyIssue]:
    """Every problem in a policy text (empty list: valid). With ``pack=None`` the
    references to probes and features are not checked."""
    try:
        doc, policy = _parse(text, source)
    except PolicyError as exc:
        return list(exc.issues)
    return _located(doc, validate_policy(policy, pack), source)


def policy_warnings_text(
    text: str | bytes, pack: PackInfo | None, source: str = "<string>"
) -> list[PolicyIssue]:
    """Warnings for a policy text that parses (empty if it does not, or without a pack):
    calibrated thresholds read through another window than the probe's calibrated one,
    or on prompt tokens (:func:`monitor.policy.validate.policy_warnings`)."""
    try:
        doc, policy = _parse(text, source)
    except PolicyError:
        return []
    return _located(doc, policy_warnings(policy, pack), source)


def load_policy_text(
    text: str | bytes, pack: PackInfo, source: str = "<string>", version: str | None = None
) -> CompiledPolicy:
    """Validate a policy text in full and compile it; raises :class:`PolicyError`."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    doc, policy = _parse(raw, source)
    try:
        return compile_policy(policy, pack, version or policy_version(raw), source)
    except SemanticError as exc:
        raise PolicyError(_located(doc, list(exc.issues), source)) from exc


def load_policy_file(path: str | Path, pack: PackInfo) -> CompiledPolicy:
    """Read, validate and compile a policy file (OSError if it cannot be read)."""
    raw = Path(path).read_bytes()
    return load_policy_text(raw, pack, source=str(path), version=policy_version(raw))


# -- internals ---------------------------------------------------------------------------
def _parse(text: str | bytes, source: str) -> tuple[YamlDoc, Policy]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError([PolicyIssue(source, 1, "(file)", f"not UTF-8 text: {exc}")]) from exc
    try:
        doc = parse_yaml(text, source)
    except YamlSyntaxError as exc:
        raise PolicyError([exc.issue]) from exc
    issues = [
        PolicyIssue(source, line, _path(loc), f"duplicate key (first at line {first})")
        for loc, line, first in duplicate_keys(doc.root)
    ]
    if not isinstance(doc.data, dict):
        issues.append(
            PolicyIssue(
                source,
                line_of(doc.root, ()),
                "(root)",
                "expected a mapping with name, mode, on_monitor_error and rules",
            )
        )
        raise PolicyError(issues)
    try:
        policy = Policy.model_validate(doc.data)
    except ValidationError as exc:
        issues.extend(validation_issues(exc, doc, source, Policy))
        raise PolicyError(sorted(issues, key=lambda i: i.line)) from exc
    if issues:
        raise PolicyError(issues)
    return doc, policy


def validation_issues(
    exc: ValidationError, doc: YamlDoc, source: str, root: type[BaseModel]
) -> list[PolicyIssue]:
    """Turn a pydantic error into located issues (``root`` is the validated model)."""
    out: list[PolicyIssue] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        at_key = err["type"] == "extra_forbidden"
        line = line_of(doc.root, _strip_tags(loc), at_key=at_key)
        out.append(PolicyIssue(source, line, _path(loc), _message(err, loc, root)))
    return out


def _located(doc: YamlDoc, issues: list[Issue], source: str) -> list[PolicyIssue]:
    located = [
        PolicyIssue(source, line_of(doc.root, i.loc, i.at_key), _path(i.loc), i.message)
        for i in issues
    ]
    return sorted(located, key=lambda i: i.line)


def _strip_tags(loc: Loc) -> Loc:
    return tuple(p for p in loc if not (isinstance(p, str) and p in CONDITION_TAGS))


def _path(loc: Loc) -> str:
    parts = _strip_tags(loc)
    return ".".join(str(p) for p in parts) if parts else "(root)"


_PREFIXES = (("Value error, ", ""), ("Input should be ", "expected "))
_GENERIC = {
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
}


def _message(err: ErrorDetails, loc: Loc, root: type[BaseModel]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        return "missing required field"
    if kind == "extra_forbidden":
        return _unknown_field(loc, root)
    ctx = err.get("ctx") or {}
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s)"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"expected letters, digits, '_', '.' or '-' (pattern {ctx.get('pattern')}), got {value!r}"
    if kind == "string_too_short":
        return f"expected at least {ctx.get('min_length')} character(s)"
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters"
    msg = _GENERIC.get(kind, err["msg"])
    for prefix, repl in _PREFIXES:
        if msg.startswith(prefix):
            msg = repl + msg[len(prefix) :]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = msg.replace("expected ", "expected a number ", 1)
    if not isinstance(value, dict | list) and kind not in ("value_error", "assertion_error"):
        msg += f", got {value!r}"
    return msg


def _unknown_field(loc: Loc, root: type[BaseModel]) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1], root)
    if model is None:
        return f"unknown field {name!r}"
    allowed = list(model.model_fields)
    hint = difflib.get_close_matches(name, allowed, n=2, cutoff=0.6)
    did = f" (did you mean {' or '.join(map(repr, hint))}?)" if hint else ""
    return f"unknown field {name!r}{did}; expected one of: {', '.join(allowed)}"


def _model_at(loc: Loc, root: type[BaseModel]) -> type[BaseModel] | None:
    """The schema model a pydantic location points into (tags select union members)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, str) and part in CONDITION_TAGS:
            tp = CONDITION_TAGS[part]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is not None and hasattr(tp, "__metadata__"):
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
