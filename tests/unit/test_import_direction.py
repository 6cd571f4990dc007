"""Arrows one way: the runtime (``monitor``) never imports the learned parts
(``classifiers``); classifiers depend on monitor, and the CLI finds classifiers' commands
through the ``saeguard.commands`` entry-point group."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def test_no_module_under_monitor_imports_classifiers() -> None:
    files = sorted((ROOT / "monitor").rglob("*.py"))
    assert len(files) > 50
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in files
        for line, name in _imported_names(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if name == "classifiers" or name.startswith("classifiers.")
    ]
    assert offenders == []


def test_the_checker_sees_every_import_form() -> None:
    src = ("import classifiers.a\nfrom classifiers.b import c\n"
           "def f():\n    from classifiers import d\n    importlib.import_module('classifiers.e')\n")
    assert [n for _, n in _imported_names(ast.parse(src))] == [
        "classifiers.a", "classifiers.b", "classifiers", "classifiers.e"]


def test_loading_the_runtime_does_not_load_classifiers() -> None:
    code = ("import sys\n"
            "import monitor.server.app, monitor.server.runtime, monitor.guard, monitor.pack, monitor.policy\n"
            "import monitor.cli.serve, monitor.cli.policy, monitor.cli.chat\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'classifiers'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_classifiers_commands_come_through_the_entry_point() -> None:
    from monitor.cli import build_parser

    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "policy", "train-sae", "train-probes", "probe-cache", "features", "steer"} <= set(choices)
