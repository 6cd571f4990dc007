"""What ``pip install saeguard`` brings is what the daemon and the CLI use: the package
list pyproject.toml's ``[tool.setuptools.packages.find]`` produces holds no experiment
driver (a module with a ``__main__`` block), and the research drivers in ops/research are
outside it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]

#: Modules in the wheel that may run as scripts: the console entry and the report
#: regeneration tool the CLI's own train-probes uses.
ALLOWED_MAIN = {"monitor.__main__", "monitor.cli", "classifiers.probes.report_md"}


def wheel_modules() -> dict[str, Path]:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=find.get("include", ("*",)), exclude=find.get("exclude", ()))
    out: dict[str, Path] = {}
    for pkg in packages:
        folder = ROOT / pkg.replace(".", "/")
        for path in folder.glob("*.py"):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            out[name] = path
    return out


def _has_main_block(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            return True
    return False


def test_the_wheel_holds_the_runtime_and_the_cli() -> None:
    modules = wheel_modules()
    assert {"monitor.server.app", "monitor.pack.loader", "classifiers.cli.probes",
            "classifiers.probes.train"} <= set(modules)
    assert not any(name.split(".")[0] in ("ops", "tests") for name in modules)


def test_no_experiment_driver_is_packaged() -> None:
    drivers = sorted(name for name, path in wheel_modules().items()
                     if _has_main_block(path) and name not in ALLOWED_MAIN)
    assert drivers == []


def test_research_drivers_live_outside_the_wheel() -> None:
    research = sorted(p.stem for p in (ROOT / "ops" / "research" / "probes").glob("*.py"))
    assert {"onpolicy_sycophancy", "estimator_study", "heldout_breakdown", "prompt_fpr"} <= set(research)
    modules = wheel_modules()
    assert [m for m in (f"classifiers.probes.{stem}" for stem in research) if m in modules] == []
    assert not any("research" in path.parts for path in modules.values())
