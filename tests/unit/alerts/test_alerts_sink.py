"""The sink with an in-memory writer: publish never blocks, overflow spills to disk,
outages spool and replay in order, crash leftovers replay once, close loses nothing."""

from __future__ import annotations

import time

from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from tests.unit.alerts.fakes import FakeWriter, make_alert


def sink_for(tmp_path, writer, **kw):
    sink = AlertSink(writer, Spool(tmp_path / "spool"), retry_min_s=0.01, retry_max_s=0.05, **kw)
    sink.start()
    return sink


def delivered_ids(writer):
    return [a.alert_id for a in writer.entries]


def test_publish_does_not_wait_for_a_stuck_writer_and_nothing_is_dropped(tmp_path):
    writer = FakeWriter()
    writer.gate.clear()  # every send blocks, like a hung Redis
    sink = sink_for(tmp_path, writer, capacity=50, batch_size=10)
    slowest = 0.0
    t0 = time.perf_counter()
    for i in range(5000):
        s = time.perf_counter()
        sink.publish(make_alert(i))
        slowest = max(slowest, time.perf_counter() - s)
    total = time.perf_counter() - t0
    assert total < 2.0 and slowest < 0.1, (total, slowest)
    state = sink.state()
    assert state.spilled > 0 and state.queue_depth + state.spooled >= 4990
    writer.gate.set()
    assert sink.flush(20)
    assert delivered_ids(writer) == [f"req-{i:06d}" for i in range(5000)]
    assert sink.state().spooled == 0 and sink.state().sent == 5000
    assert sink.close(5)


def test_outage_spools_then_replays_in_order(tmp_path):
    writer = FakeWriter()
    sink = sink_for(tmp_path, writer, batch_size=7)
    for i in range(20):
        sink.publish(make_alert(i))
    assert sink.flush(5)
    writer.up = False
    for i in range(20, 60):
        sink.publish(make_alert(i))
    assert not sink.flush(0.3)
    state = sink.state()
    assert not state.connected and state.spooling and state.spooled == 40 and state.last_error
    writer.up = True
    assert sink.flush(10)
    assert delivered_ids(writer) == [f"req-{i:06d}" for i in range(60)]
    state = sink.state()
    assert state.connected and not state.spooling and state.sent == 60
    sink.close(2)


def test_batch_failing_midway_is_resent_without_duplicates(tmp_path):
    writer = FakeWriter()
    writer.fail_after = 3  # the first batch gets 3 alerts in, then the connection drops
    sink = sink_for(tmp_path, writer, batch_size=10)
    for i in range(10):
        sink.publish(make_alert(i))
    assert sink.flush(10)
    assert delivered_ids(writer) == [f"req-{i:06d}" for i in range(10)]
    assert sink.state().duplicates == 3
    sink.close(2)


def test_close_spools_leftovers_and_next_run_replays_them(tmp_path):
    writer = FakeWriter()
    writer.up = False
    sink = sink_for(tmp_path, writer)
    for i in range(30):
        sink.publish(make_alert(i))
    assert sink.close(0.2) is False
    assert list((tmp_path / "spool").glob("seg-*.jsonl"))  # on disk, not in memory
    writer.up = True
    again = sink_for(tmp_path, writer)
    assert again.flush(10)
    assert delivered_ids(writer) == [f"req-{i:06d}" for i in range(30)]
    again.close(2)


def test_crash_between_replay_and_delete_does_not_duplicate(tmp_path):
    writer = FakeWriter()
    alerts = [make_alert(i) for i in range(12)]
    writer.send(alerts[:8])  # these reached Redis before the "crash"...
    spool = Spool(tmp_path / "spool")
    spool.open()
    spool.append(alerts)  # ...but were still in the spool
    spool.close()
    sink = sink_for(tmp_path, writer)
    assert sink.flush(10)
    assert delivered_ids(writer) == [a.alert_id for a in alerts]
    assert sink.state().duplicates == 8 and sink.state().sent == 4
    sink.close(2)


def test_publish_after_close_goes_to_disk(tmp_path):
    writer = FakeWriter()
    sink = sink_for(tmp_path, writer)
    sink.close(1)
    sink.publish(make_alert(1))
    spool = Spool(tmp_path / "spool")
    spool.open()
    assert spool.pending == 1
    spool.close()


def test_sender_survives_a_broken_log_stream(tmp_path):
    import structlog

    broken = open(tmp_path / "log.txt", "w")  # noqa: SIM115
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=broken), cache_logger_on_first_use=False)
    broken.close()  # every log call now raises ValueError
    try:
        writer = FakeWriter()
        writer.up = False
        sink = sink_for(tmp_path, writer)
        for i in range(10):
            sink.publish(make_alert(i))
        assert not sink.flush(0.3)  # spooled, logging "redis unreachable" failed silently
        writer.up = True
        assert sink.flush(10)
        assert delivered_ids(writer) == [f"req-{i:06d}" for i in range(10)]
        sink.close(2)
    finally:
        structlog.reset_defaults()


def test_idle_heartbeat_notices_redis_leaving_and_coming_back_without_any_alert(tmp_path):
    # a fail_closed policy refuses requests while `connected` is false: it must not wait for
    # the next alert to find out that Redis is gone (or back)
    writer = FakeWriter()
    sink = sink_for(tmp_path, writer, heartbeat_s=0.05)
    deadline = time.monotonic() + 2
    while not sink.state().connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.state().connected
    writer.up = False
    deadline = time.monotonic() + 2
    while sink.state().connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sink.state().connected and "heartbeat" in sink.state().last_error
    writer.up = True
    deadline = time.monotonic() + 2
    while not sink.state().connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.state().connected and sink.state().last_error == ""
    assert writer.entries == []  # no alert was involved
    sink.close(1)
