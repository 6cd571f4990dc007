"""The explicit registry of action plug-ins, keyed by the name users write in YAML.

This dict is the one table of effects. Built-in actions are registered by
:mod:`monitor.policy.actions` (the package ``__init__``). A new action is one module with
a spec model, ``validate``, and ``compile`` returning its own effect (a
:class:`~monitor.policy.actions.base.CompiledAction` subclass with ``fire`` and
``apply``: see :mod:`monitor.policy.actions.base`), a :func:`register_action` call, and
one field on :class:`monitor.policy.schema.ActionEntry` (the YAML key; a unit test checks
that the schema and the registry list the same actions). The engine and the guard need no
change.
"""

from __future__ import annotations

from typing import Any

from monitor.policy.actions.base import ActionKind

_REGISTRY: dict[str, ActionKind[Any]] = {}


def register_action(kind: ActionKind[Any]) -> None:
    """Add an action plug-in; registering a name twice is an error."""
    if kind.name in _REGISTRY:
        raise ValueError(f"action {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind


def get_action(name: str) -> ActionKind[Any]:
    """The plug-in for ``name``; KeyError names the registered ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no action {name!r}; registered: {sorted(_REGISTRY)}") from None


def action_names() -> tuple[str, ...]:
    """Registered action names, in registration order."""
    return tuple(_REGISTRY)
