"""Malformed policy files made by mutating the shipped ones (policies/default.yaml,
strict.yaml, shadow.yaml) and loaded through the daemon's :class:`PolicyStore` against
the committed guard pack: each mutant is either valid, or rejected with every problem
printed as ``FILE:LINE: field: message`` (the line inside the file, the field naming
what to fix) while the previous snapshot keeps serving. A reload must never raise.

Mutations (seeded, a few hundred per file, 1-3 stacked): delete a line, give a value
the wrong type, misspell a key, an out-of-range number, an unknown probe, an unknown
action, break the indentation, duplicate a rule id, duplicate a key, an uncalibrated
fpr, an unclosed quote/bracket, a tab, an emptied value, a truncated file, and hostile
bytes: a control character, an integer too long to convert, nesting deeper than the
parser's recursion, a YAML alias bomb, a python tag, a non-string key.

Found this way (fixed in monitor/policy/yamlmap.py, each kept below as a regression): a
NUL or other disallowed character, a 5000-digit integer and 3000-deep brackets raised
out of ``PolicyStore.reload`` (ReaderError / ValueError / RecursionError) instead of a
located rejection, and nested aliases took exponential time in the duplicate-key check.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor.policy import PolicyStore, load_pack_info
from ops.bench.policy_mutants import HOSTILE, ISSUE, OUT_OF_RANGE, WRONG_TYPES, edit_kv, mutate

pytestmark = pytest.mark.slow  # ~600 reloads of the shipped policies: PyYAML parsing is pure Python

ROOT = Path(__file__).resolve().parents[3]
PACK = ROOT / "classifiers" / "packs" / "smollm2-135m-instruct"
POLICIES = [ROOT / "policies" / f"{name}.yaml" for name in ("default", "strict", "shadow")]
PER_FILE = 150


@pytest.fixture(scope="module")
def pack():
    if not (PACK / "probes" / "probes.json").is_file():
        pytest.skip("the committed guard pack is not in this checkout")
    return load_pack_info(PACK)


@pytest.mark.parametrize("base", POLICIES, ids=[p.stem for p in POLICIES])
def test_mutated_policies_are_rejected_with_file_line_field_and_old_keeps_serving(base, pack, tmp_path):
    path = tmp_path / base.name
    text = base.read_text()
    path.write_text(text)
    alerts: list = []
    store = PolicyStore(path, pack, on_alert=alerts.append)
    original = store.load()
    rnd = random.Random(f"mutants-{base.stem}")
    seen: Counter[str] = Counter()
    bad: list[str] = []
    for n in range(PER_FILE):
        mutant, ops = mutate(text, rnd)
        path.write_text(mutant)
        before = store.current
        result = store.reload()  # must not raise, whatever the bytes
        n_lines = mutant.count("\n") + 1
        if result.ok:
            seen["valid"] += 1
            assert result.version == store.current.version
            path.write_text(text)  # back to the shipped policy for the next mutant
            assert store.reload().ok and store.current.version == original.version
            continue
        seen["rejected"] += 1
        assert store.current is before, "a rejected file replaced the serving policy"
        assert result.version == before.version and not result.changed
        assert result.issues, f"rejected without saying why: {ops}"
        for issue in result.issues:
            shown = str(issue)
            m = ISSUE.match(shown)
            problem = None
            if m is None or m["file"] != str(path):
                problem = "not FILE:LINE: field: message"
            elif not 1 <= int(m["line"]) <= n_lines:
                problem = f"line {m['line']} outside the file (1..{n_lines})"
            elif not m["field"].strip() or not m["message"].strip():
                problem = "empty field or message"
            if problem:
                bad.append(f"mutant {n} {ops}: {problem}: {shown!r}")
        # the alert published for the rejection names the same problems
        assert alerts and str(result.issues[0]) in alerts[-1].detail
    assert not bad, "\n".join(bad[:20])
    # the mutations are not all caught by one trivial check
    assert seen["rejected"] >= PER_FILE // 2, seen
    assert store.current.version == original.version


def test_mutation_rejections_name_the_mutated_field(pack, tmp_path):
    """A single value edit is reported at the edited line and names the edited field
    (``threshold`` is left out: a number there makes the rule's ``fpr`` the error)."""
    base = POLICIES[0]
    lines = base.read_text().splitlines()
    path = tmp_path / "p.yaml"
    path.write_text(base.read_text())
    store = PolicyStore(path, pack)
    store.load()
    rnd = random.Random(7)
    checked = 0
    for _ in range(100):
        edited = list(lines)
        key = edit_kv(edited, rnd, WRONG_TYPES + OUT_OF_RANGE,
                       ("fpr", "tokens", "min_consecutive", "cooldown_tokens", "top_k", "value", "mode", "on_monitor_error", "reduce", "scope", "severity", "probe", "name", "id"))
        changed = next(i for i, (a, b) in enumerate(zip(lines, edited, strict=True)) if a != b) + 1
        path.write_text("\n".join(edited) + "\n")
        result = store.reload()
        if result.ok:
            path.write_text(base.read_text())
            assert store.reload().ok
            continue
        checked += 1
        where = [(i.line, i.path) for i in result.issues]
        assert any(i.line == changed and (i.path.split(".")[-1] == key or i.path == "(yaml)")
                   for i in result.issues), f"{key} edited at line {changed}: {edited[changed - 1]!r} -> {where}"
    assert checked >= 50


def _hostile_text(name: str) -> tuple[str, int]:
    lines = POLICIES[0].read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("description:"))
    lines[at] = HOSTILE[name][0]
    return "\n".join(lines) + "\n", at + 1


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bytes_are_a_located_rejection_not_an_exception(name, pack, tmp_path):
    text, line = _hostile_text(name)
    path = tmp_path / "p.yaml"
    path.write_text(POLICIES[0].read_text())
    store = PolicyStore(path, pack)
    old = store.load()
    path.write_text(text)
    t0 = time.perf_counter()
    result = store.reload()
    assert time.perf_counter() - t0 < 5.0, "rejecting it took too long"
    assert not result.ok and store.current is old
    shown = [str(i) for i in result.issues]
    assert any(i.line == line for i in result.issues), shown
    assert all(ISSUE.match(s) and s.startswith(f"{path}:") for s in shown), shown


def test_a_validator_crash_is_a_rejection_and_the_old_policy_keeps_serving(pack, tmp_path, monkeypatch):
    import monitor.policy.store as store_mod

    path = tmp_path / "p.yaml"
    path.write_text(POLICIES[0].read_text())
    store = PolicyStore(path, pack)
    old = store.load()

    def boom(*_a, **_k):
        raise RuntimeError("validator bug")

    monkeypatch.setattr(store_mod, "load_policy_text", boom)
    path.write_text(POLICIES[1].read_text())
    result = store.reload()
    assert not result.ok and store.current is old
    assert str(result.issues[0]) == f"{path}:1: (file): could not be validated: RuntimeError: validator bug"
