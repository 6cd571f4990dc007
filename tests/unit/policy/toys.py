"""A toy guard pack and helpers for policy tests (policies are written inline)."""

from __future__ import annotations

import textwrap

from monitor.policy import CompiledPolicy, StaticPackInfo, load_policy_text

D_SAE = 64
PROBES = ("deception", "sycophancy", "unsafe_code", "bias")


def toy_pack() -> StaticPackInfo:
    """Four probes; calibrated at FPR 0.01 and 0.05; 16 ranked features each."""
    return StaticPackInfo.build(
        D_SAE,
        {
            name: {
                "concept": name,
                "thresholds": {"0.01": 0.8, "0.05": 0.6},
                "top_features": [[i * 16 + j, 1.0 - j / 16] for j in range(16)],
            }
            for i, name in enumerate(PROBES)
        },
        hook_name="blocks.1.hook_resid_post",
    )


def policy_yaml(rules: str, mode: str = "enforce", name: str = "t") -> str:
    """A policy document around an inline ``rules:`` block (dedented)."""
    body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ")
    return f"name: {name}\nmode: {mode}\non_monitor_error: fail_open\nrules:\n{body}\n"


def compile_rules(rules: str, mode: str = "enforce") -> CompiledPolicy:
    return load_policy_text(policy_yaml(rules, mode), toy_pack())
