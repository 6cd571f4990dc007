"""train-probes appends the hand-written NOTES.md beside REPORT.md unless told otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from classifiers.cli.probes import NOTES_FILE, _notes
from classifiers.probes.report_md import NOTES_MARKER, with_notes
from monitor.cli import CliError


def test_notes_default_to_the_output_directorys_notes_file(tmp_path: Path) -> None:
    (tmp_path / NOTES_FILE).write_text("## What we tried by hand\n", encoding="utf-8")
    assert _notes(argparse.Namespace(notes=None), tmp_path) == "## What we tried by hand\n"


def test_explicit_notes_file_wins(tmp_path: Path) -> None:
    (tmp_path / NOTES_FILE).write_text("default", encoding="utf-8")
    other = tmp_path / "other.md"
    other.write_text("explicit", encoding="utf-8")
    assert _notes(argparse.Namespace(notes=str(other)), tmp_path) == "explicit"


def test_no_notes_file_means_no_notes(tmp_path: Path) -> None:
    assert _notes(argparse.Namespace(notes=None), tmp_path) == ""


def test_missing_explicit_notes_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="--notes .*no such file"):
        _notes(argparse.Namespace(notes=str(tmp_path / "nope.md")), tmp_path)


def test_the_shipped_report_ends_with_the_shipped_notes() -> None:
    probes = Path(__file__).resolve().parents[3] / "classifiers/packs/smollm2-135m-instruct/probes"
    notes = (probes / NOTES_FILE).read_text(encoding="utf-8").strip()
    assert (probes / "REPORT.md").read_text(encoding="utf-8").rstrip().endswith(notes), (
        "NOTES.md changed: run `python -m classifiers.probes.report_md " + str(probes.relative_to(probes.parents[3]))
        + "` to put it into REPORT.md")


def test_new_notes_replace_the_old_ones_and_leave_the_tables() -> None:
    tables = "# Probe report\n\n| a | b |\n|---|---|\n"
    old = with_notes(tables, NOTES_MARKER + " -->\n\n## Old findings\n")
    new = with_notes(old, NOTES_MARKER + " -->\n\n## New findings\n")
    assert new == tables + "\n" + NOTES_MARKER + " -->\n\n## New findings\n"
    assert with_notes(new, NOTES_MARKER + " -->\n\n## New findings\n") == new
    assert with_notes(old, "") == tables
