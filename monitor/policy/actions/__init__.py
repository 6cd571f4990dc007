"""Policy actions: one module per action, found through an explicit registry.

Importing this package registers the built-in actions ``alert``, ``clamp``, ``steer``
and ``stop`` (an in-memory dict update; no I/O).
"""

from __future__ import annotations

from monitor.policy.actions import alert, clamp, steer, stop
from monitor.policy.actions.base import ActionContext, ActionKind, CompiledAction, SteerTarget
from monitor.policy.actions.registry import action_names, get_action, register_action

for _module in (alert, clamp, steer, stop):
    if _module.KIND.name not in action_names():
        register_action(_module.KIND)

__all__ = [
    "ActionContext",
    "ActionKind",
    "CompiledAction",
    "SteerTarget",
    "action_names",
    "get_action",
    "register_action",
]
