"""``saeguard generate --pack``: each response token streams with its concept scores, a
policy's rules fire on it, and a pack built for another model is refused before loading."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PACK = Path(__file__).resolve().parents[2] / "classifiers" / "packs" / "smollm2-135m-instruct"
ALWAYS = """name: always
mode: enforce
on_monitor_error: fail_open
rules:
  - id: every-token
    when: {probe: deception, threshold: 0.0, window: {tokens: 1, reduce: max}, scope: response}
    then:
      - alert: {severity: low}
"""


def generate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "generate", "Is the earth flat?", "--threads", "1",
                           *args], capture_output=True, text=True, timeout=timeout)


def test_each_token_streams_with_its_four_scores_and_the_rules_that_fired(tmp_path):
    policy = tmp_path / "always.yaml"
    policy.write_text(ALWAYS)
    r = generate("--pack", str(PACK), "--policy", str(policy), "--max-tokens", "6")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["token", "deception", "sycophancy", "unsafe_code", "bias"]
    rows = lines[1:7]
    assert len(rows) == 6
    for row in rows:
        scores = [float(x) for x in row[16:].split()[:4]]
        assert all(0.0 <= s <= 1.0 for s in scores)
    # a rule fires on the rising edge of its condition: threshold 0 is true from the first
    # response token on, so it fires there, once
    assert rows[0].rstrip().endswith("every-token") and not any(r_.rstrip().endswith("every-token") for r_ in rows[1:])
    assert r.stderr.count("[alert every-token]") == 1 and "1 alerts" in r.stderr


def test_a_pack_for_another_model_is_refused_in_one_line_before_the_model_loads():
    t = time.perf_counter()
    r = generate("--model", "qwen2.5-coder-1.5b-instruct", "--pack", str(PACK), timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "was built for model smollm2-135m-instruct" in lines[0]
    assert "qwen2.5-coder-1.5b-instruct" in lines[0] and "Traceback" not in r.stderr
    assert time.perf_counter() - t < 60  # refused without loading 7 GB of weights


def test_an_invalid_policy_is_refused_with_its_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmode: enforce\non_monitor_error: fail_open\nrules:\n  - id: r\n    wehn: {}\n")
    r = generate("--pack", str(PACK), "--policy", str(bad), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"policy {bad} is invalid" in r.stderr and f"{bad}:6" in r.stderr and "wehn" in r.stderr
    assert "token" not in r.stdout  # nothing was generated
