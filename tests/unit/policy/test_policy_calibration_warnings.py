"""``policy check`` warns (never fails) when a calibrated threshold is read through another
window than the probe was calibrated with (probes.json ``runtime_window``), or on prompt
tokens: the ``fpr`` the author wrote would not be the rate they get."""

from __future__ import annotations

import glob
import textwrap
from pathlib import Path

import pytest
import structlog

from monitor.cli import main
from monitor.policy.loader import policy_warnings_text
from monitor.policy.packinfo import StaticPackInfo, load_pack_info

REPO = Path(__file__).resolve().parents[3]
PACK = REPO / "classifiers" / "packs" / "smollm2-135m-instruct"

INFO = StaticPackInfo.build(16, {
    "sycophancy": {"thresholds": {"0.01": 0.88}, "top_features": [1],
                   "runtime_window": {"tokens": 16, "reduce": "mean"}},
    "deception": {"thresholds": {"0.01": 0.89}, "top_features": [2],
                  "metrics": {"calibration": {"window": {"tokens": 1, "reduce": "max"}}}},
    "legacy": {"thresholds": {"0.01": 0.5}, "top_features": [3]},
})


def policy(*whens: str) -> str:
    rules = "".join(
        f"  - id: r{i}\n    when: {w}\n    then: [{{alert: {{severity: low}}}}]\n" for i, w in enumerate(whens)
    )
    return f"name: p\nmode: enforce\non_monitor_error: fail_open\nrules:\n{rules}"


def messages(text: str, pack=INFO) -> list[str]:
    return [str(w) for w in policy_warnings_text(text, pack, source="p.yaml")]


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    structlog.reset_defaults()


def test_calibration_window_is_read_from_runtime_window_or_calibration_metrics() -> None:
    assert INFO.probes["sycophancy"].calibration_window == (16, "mean", "every_token")
    assert INFO.probes["deception"].calibration_window == (1, "max", "every_token")
    assert INFO.probes["legacy"].calibration_window is None
    shipped = load_pack_info(PACK).probes
    assert {n: p.calibration_window for n, p in shipped.items()} == {
        "deception": (1, "max", "every_token"), "sycophancy": (16, "mean", "every_token"),
        "unsafe_code": (4, "mean", "every_token"), "bias": (4, "mean", "every_token")}


def test_other_window_warns_with_line_probe_and_both_windows() -> None:
    text = policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 4, reduce: max}}")
    assert messages(text) == [
        "p.yaml:6: rules.0.when.window: warning: probe 'sycophancy' was calibrated with window "
        "{tokens: 16, reduce: mean} (probes.json runtime_window) but this rule uses "
        "{tokens: 4, reduce: max}: its false-positive rate is not the calibrated 1%"]


def test_default_window_counts_as_one_token_mean() -> None:
    text = policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01}")
    assert len(messages(text)) == 1 and "uses {tokens: 1, reduce: mean}" in messages(text)[0]


def test_no_warning_for_the_calibrated_window_absolute_thresholds_or_unknown_windows() -> None:
    text = policy(
        "{probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 16, reduce: mean}}",
        # one token: mean and max are the same reading
        "{probe: deception, threshold: calibrated, fpr: 0.01}",
        "{probe: sycophancy, threshold: 0.9, window: {tokens: 2, reduce: max}}",
        "{probe: legacy, threshold: calibrated, fpr: 0.01, window: {tokens: 8, reduce: max}}",
    )
    assert messages(text) == []


def test_prompt_scope_and_nested_conditions_warn_at_their_own_line() -> None:
    text = textwrap.dedent("""\
        name: p
        mode: enforce
        on_monitor_error: fail_open
        rules:
          - id: r
            when:
              any:
                - {probe: deception, threshold: calibrated, fpr: 0.01, scope: prompt}
                - {probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 2, reduce: mean}}
            then: [{alert: {severity: low}}]
        """)
    got = messages(text)
    assert got[0].startswith("p.yaml:8: rules.0.when.any.0.scope: warning: the calibrated thresholds of probe "
                             "'deception' were measured on responses")
    assert got[1].startswith("p.yaml:9: rules.0.when.any.1.window: warning: probe 'sycophancy'")
    assert len(got) == 2


def test_invalid_or_packless_policies_have_no_warnings() -> None:
    assert messages("name: [") == []
    assert messages(policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01}"), pack=None) == []


def test_cli_prints_warning_on_stderr_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(policy("{probe: bias, threshold: calibrated, fpr: 0.05, window: {tokens: 16, reduce: mean}}"))
    assert main(["policy", "check", str(f), "--pack", str(PACK)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{f}: ok (policy p")
    assert out.err.strip() == (
        f"{f}:6: rules.0.when.window: warning: probe 'bias' was calibrated with window {{tokens: 4, reduce: mean}} "
        "(probes.json runtime_window) but this rule uses {tokens: 16, reduce: mean}: its false-positive rate "
        "is not the calibrated 5%")


def test_shipped_policies_use_the_calibrated_windows(capsys: pytest.CaptureFixture[str]) -> None:
    """Each committed policy against its pack: ``policies/<model spec>.yaml`` against
    ``classifiers/packs/<model spec>``, the others against the default pack."""
    files = sorted(glob.glob(str(REPO / "policies" / "*.yaml")))
    for f in files:
        own = REPO / "classifiers" / "packs" / Path(f).stem
        pack = own if (own / "probes" / "probes.json").is_file() else PACK
        assert main(["policy", "check", f, "--pack", str(pack)]) == 0, f
        err = capsys.readouterr().err
        assert ".window: warning" not in err, (f, err)


def test_readme_states_the_shipped_calibrated_windows_and_rates() -> None:
    """policies/README.md's table must say what probes.json says (a retrained pack must
    update the text, or a policy author copies a stale window)."""
    import json
    import re

    readme = (REPO / "policies" / "README.md").read_text()
    doc = json.loads((PACK / "probes" / "probes.json").read_text())
    for name, probe in doc["probes"].items():
        row = re.search(rf"^\| `{name}` \|(.*)$", readme, re.M)
        assert row, f"no README row for {name}"
        w = probe["runtime_window"]
        assert f"`window: {{tokens: {w['tokens']}, reduce: {w['reduce']}}}`" in row.group(1)
        cal = probe["metrics"]["calibration"]
        rates = (f"{cal['achieved_fpr']['0.01']:.3f} / {cal['achieved_fpr']['0.05']:.3f} "
                 f"({cal['benign_fpr']['0.01']:.3f} / {cal['benign_fpr']['0.05']:.3f})")
        assert rates in row.group(1), (name, rates)


def test_the_store_reports_warnings_on_reload_without_rejecting(tmp_path: Path) -> None:
    from monitor.policy import PolicyStore

    path = tmp_path / "p.yaml"
    path.write_text(policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 16, reduce: mean}}"))
    store = PolicyStore(path, INFO)
    store.load()
    path.write_text(policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 4, reduce: mean}}"))
    result = store.reload()
    assert result.ok and result.changed and store.current.version == result.version
    assert len(result.warnings) == 1 and "sycophancy" in str(result.warnings[0])
    assert str(path) in str(result.warnings[0])


def test_a_threshold_calibrated_at_the_end_of_the_answer_warns_when_read_at_every_token_and_back() -> None:
    info = StaticPackInfo.build(16, {
        "sycophancy": {"thresholds": {"0.01": 0.7}, "top_features": [1],
                       "runtime_window": {"tokens": 1, "reduce": "max", "at": "response_end"}}})
    assert info.probes["sycophancy"].calibration_window == (1, "max", "response_end")
    live = policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 1, reduce: max}}")
    assert messages(live, info) == [
        "p.yaml:6: rules.0.when.window: warning: probe 'sycophancy' was calibrated with window "
        "{tokens: 1, reduce: max, at: response_end} (probes.json runtime_window) but this rule uses "
        "{tokens: 1, reduce: max}: its false-positive rate is not the calibrated 1%"]
    end = policy("{probe: sycophancy, threshold: calibrated, fpr: 0.01, window: {tokens: 1, reduce: max}, "
                 "at: response_end}")
    assert messages(end, info) == []
    assert len(messages(end)) == 1  # INFO's sycophancy was calibrated per token (16-token mean)
