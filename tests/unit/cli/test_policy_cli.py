"""``saeguard policy check|test|schema``: exit codes and output format."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog

from monitor.cli import main
from tests.unit.policy.test_policy_packinfo import write_pack

ROOT = Path(__file__).resolve().parents[3]

GOOD = textwrap.dedent(
    """\
    name: p
    mode: enforce
    on_monitor_error: fail_open
    rules:
      - id: lie
        when: {probe: deception, threshold: calibrated, fpr: 0.01}
        then:
          - alert: {severity: high}
          - clamp: {top_k: 2, tokens: 2}
      - id: stop-lie
        when: {probe: deception, threshold: 0.95, min_consecutive: 2}
        then: [{stop: {message: bye}}]
    """
)


@pytest.fixture(autouse=True)
def _reset_logging():
    """main() configures structlog for the captured stderr of one test; undo it."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def pack_dir(tmp_path):
    return write_pack(tmp_path / "pack", d_sae=16)


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_valid_exits_0(tmp_path, pack_dir, capsys):
    f = tmp_path / "p.yaml"
    f.write_text(GOOD)
    code, out, _ = run(["policy", "check", str(f), "--pack", str(pack_dir)], capsys)
    assert code == 0
    assert out.startswith(f"{f}: ok (policy p, enforce, 2 enabled rules, version ")


def test_check_reports_each_error_as_file_line_path_message(tmp_path, pack_dir, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(GOOD.replace("fpr: 0.01", "fpr: 0.3").replace("top_k: 2", "top_k: 9"))
    code, out, _ = run(["policy", "check", str(f), "--pack", str(pack_dir)], capsys)
    assert code == 1
    assert out.splitlines() == [
        f"{f}:6: rules.0.when.fpr: probe 'deception' has no threshold calibrated at fpr 0.3; calibrated rates: 0.01, 0.05",
        f"{f}:9: rules.0.then.1.clamp.top_k: top_k 9 exceeds the 2 ranked features the pack has for probe 'deception'",
    ]


def test_check_without_pack_checks_structure_only(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text(GOOD.replace("deception", "nonexistent"))
    code, out, err = run(["policy", "check", str(f)], capsys)
    assert code == 0 and "ok" in out and "no --pack" in err
    f.write_text(GOOD.replace("mode: enforce", "mode: loud"))
    code, out, _ = run(["policy", "check", str(f)], capsys)
    assert code == 1 and out.startswith(f"{f}:2: mode: expected 'enforce' or 'shadow'")


def test_check_yaml_syntax_error_and_missing_file(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text(GOOD.replace("  - id: lie", "  - id: 'lie"))
    code, out, _ = run(["policy", "check", str(f)], capsys)
    assert code == 1 and out.startswith(f"{f}:5: (yaml): invalid YAML")
    code, _, err = run(["policy", "check", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "cannot read" in err


def test_check_shipped_policies_subprocess(pack_dir):
    """The real console entry point, as a user runs it."""
    files = [str(ROOT / "policies" / f"{n}.yaml") for n in ("default", "strict", "shadow")]
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "policy", "check", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": ok") == 3


CASES = textwrap.dedent(
    """\
    pack:
      d_sae: 16
      probes:
        deception: {thresholds: {0.01: 0.8}, top_features: [5, 6, 7]}
    cases:
      - name: lies then stops
        steps:
          - {token: "<user>", scope: prompt, scores: {deception: 0.99}}
          - {token: "Sure", scores: {deception: 0.2}}
          - {token: " the moon", scores: {deception: 0.85}}
          - {token: " is cheese", scores: {deception: 0.97}}
          - {token: ".", scores: {deception: 0.98}}
        expect:
          - {rule: lie, token_index: 2}
          - {rule: stop-lie, token_index: 4}
      - name: honest
        steps:
          - {token: "Paris", scores: {deception: 0.1}}
    """
)


def test_policy_test_jsonl(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(GOOD)
    (tmp_path / "cases.yaml").write_text(CASES)
    code, out, _ = run(
        [
            "policy",
            "test",
            str(tmp_path / "p.yaml"),
            "--cases",
            str(tmp_path / "cases.yaml"),
            "--format",
            "jsonl",
        ],
        capsys,
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    firings = [r for r in rows if "rule" in r]
    assert [
        (r["case"], r["rule"], r["token_index"], r["token"], r["actions"]) for r in firings
    ] == [
        ("lies then stops", "lie", 2, " the moon", ["alert", "clamp"]),
        ("lies then stops", "stop-lie", 4, ".", ["stop"]),
    ]
    summaries = [r["summary"] for r in rows if "summary" in r]
    assert summaries[0] == {
        "case": "lies then stops",
        "fired": 2,
        "stopped_at": 4,
        "passed": True,
        "missing": [],
        "unexpected": [],
    }
    assert summaries[1] == {"case": "honest", "fired": 0, "stopped_at": None}


def test_policy_test_table_and_failed_expectation(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(GOOD.replace("min_consecutive: 2", "min_consecutive: 3"))
    (tmp_path / "cases.yaml").write_text(CASES)
    code, out, _ = run(
        ["policy", "test", str(tmp_path / "p.yaml"), "--cases", str(tmp_path / "cases.yaml")],
        capsys,
    )
    assert code == 1
    assert "case: lies then stops  [expect: FAILED]" in out
    assert "expected but did not fire: stop-lie at token 4" in out
    assert "(no rule fired)" in out


def test_policy_test_with_pack_dir_and_bad_cases(tmp_path, pack_dir, capsys):
    (tmp_path / "p.yaml").write_text(GOOD)
    (tmp_path / "cases.yaml").write_text(CASES.replace("scope: prompt", "scope: system"))
    code, out, _ = run(
        [
            "policy",
            "test",
            str(tmp_path / "p.yaml"),
            "--cases",
            str(tmp_path / "cases.yaml"),
            "--pack",
            str(pack_dir),
        ],
        capsys,
    )
    assert code == 1 and out.startswith(
        f"{tmp_path / 'cases.yaml'}:8: cases.0.steps.0.scope: expected 'prompt' or 'response'"
    )


def test_schema_command_writes_and_checks(tmp_path, capsys):
    out_file = tmp_path / "schema.json"
    assert run(["policy", "schema", "--out", str(out_file)], capsys)[0] == 0
    assert out_file.read_text() == (ROOT / "policies" / "schema.json").read_text()
    assert run(["policy", "schema", "--out", str(out_file), "--check"], capsys)[0] == 0
    out_file.write_text("{}")
    code, out, _ = run(["policy", "schema", "--out", str(out_file), "--check"], capsys)
    assert code == 1 and "out of date" in out
