"""The policy engine: policy files (YAML) validated against the guard pack, compiled
into immutable snapshots, evaluated per token by a per-request monitor.

Typical use by the sidecar::

    pack = load_pack_info(pack_dir)
    store = PolicyStore(policy_path, pack, on_alert=sink.publish)
    store.load()
    PolicyWatcher(store).start(); install_sighup_handler(store)
    ...
    monitor = store.current.new_request(request_id, RequestContext(model=..., hook=...))
    for each position:  result = monitor.step(scores, token_index, token, scope)

Nothing is read or started at import time.
"""

from __future__ import annotations

from monitor.policy.compiled import CompiledPolicy, CompiledRule, compile_policy
from monitor.policy.engine import RequestContext, RequestMonitor, SteerTarget, StepResult
from monitor.policy.issues import PolicyError, PolicyIssue
from monitor.policy.loader import (
    check_policy_text,
    load_policy_file,
    load_policy_text,
    policy_version,
)
from monitor.policy.packinfo import PackInfo, ProbeInfo, StaticPackInfo, load_pack_info
from monitor.policy.store import PolicyStore, ReloadResult
from monitor.policy.watch import PolicyWatcher, install_sighup_handler

__all__ = [
    "CompiledPolicy",
    "CompiledRule",
    "PackInfo",
    "PolicyError",
    "PolicyIssue",
    "PolicyStore",
    "PolicyWatcher",
    "ProbeInfo",
    "ReloadResult",
    "RequestContext",
    "RequestMonitor",
    "StaticPackInfo",
    "SteerTarget",
    "StepResult",
    "check_policy_text",
    "compile_policy",
    "install_sighup_handler",
    "load_pack_info",
    "load_policy_file",
    "load_policy_text",
    "policy_version",
]
