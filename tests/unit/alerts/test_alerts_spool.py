"""The disk spool: fsync'd appends, segments, replay order, safe deletion, torn lines,
single-process lock."""

from __future__ import annotations

import pytest

from monitor.alerts.spool import Spool, SpoolLockedError
from tests.unit.alerts.fakes import make_alert


def ids(segments):
    return [a.alert_id for s in segments for a in s.alerts]


def test_append_then_replay_in_order_and_discard(tmp_path):
    spool = Spool(tmp_path / "s", segment_records=3)
    spool.open()
    spool.append([make_alert(i) for i in range(5)])
    spool.append([make_alert(i) for i in range(5, 7)])
    assert spool.pending == 7
    segments = list(spool.closed_segments())
    assert ids(segments) == [f"req-{i:06d}" for i in range(7)]
    # appends during replay go to a new segment, not the one being replayed
    spool.append([make_alert(99)])
    for seg in segments:
        spool.discard(seg)
    assert spool.pending == 1
    assert ids(spool.closed_segments()) == ["req-000099"]
    spool.close()


def test_reopen_counts_leftovers_and_continues_numbering(tmp_path):
    spool = Spool(tmp_path)
    spool.open()
    spool.append([make_alert(i) for i in range(4)])
    spool.close()
    again = Spool(tmp_path)
    again.open()
    assert again.pending == 4
    again.append([make_alert(4)])
    assert ids(again.closed_segments()) == [f"req-{i:06d}" for i in range(5)]
    again.close()


def test_torn_last_line_is_skipped(tmp_path):
    spool = Spool(tmp_path)
    spool.open()
    spool.append([make_alert(0), make_alert(1)])
    spool.close()
    (seg,) = tmp_path.glob("seg-*.jsonl")
    with open(seg, "ab") as f:
        f.write(b'{"alert_id": "req-000002", "kind": "ru')  # crash mid-write
    again = Spool(tmp_path)
    again.open()
    assert again.pending == 2
    assert ids(again.closed_segments()) == ["req-000000", "req-000001"]
    again.close()


def test_one_process_per_spool(tmp_path):
    first = Spool(tmp_path)
    first.open()
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path).open()
    first.close()
    second = Spool(tmp_path)
    second.open()
    second.close()
