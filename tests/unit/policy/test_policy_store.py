"""Hot reload: atomic swap, per-request snapshots, file watcher thread, SIGHUP."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from monitor.policy import PolicyStore, PolicyWatcher, install_sighup_handler, policy_version
from tests.unit.policy.toys import PROBES, policy_yaml, toy_pack

V1 = policy_yaml(
    """
    - id: r
      when: {probe: deception, threshold: 0.5}
      then: [{alert: {severity: low}}]
    """,
    name="v1",
)
V2 = V1.replace("name: v1", "name: v2").replace("threshold: 0.5", "threshold: 0.9")
BAD = V1.replace("threshold: 0.5", "threshold: 5")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(V1)
    alerts: list = []
    store = PolicyStore(path, toy_pack(), on_alert=alerts.append)
    store.load()
    store.alerts = alerts  # type: ignore[attr-defined]
    return store


def test_version_is_sha256_of_file_bytes(store):
    assert store.current.version == policy_version(V1.encode()) == store.current.version.lower()
    assert len(store.current.version) == 64


def test_reload_swaps_and_inflight_request_keeps_its_snapshot(store):
    mon = store.current.new_request("old")
    store.path.write_text(V2)
    result = store.reload()
    assert result.ok and result.changed and store.current.name == "v2"
    scores = {**dict.fromkeys(PROBES, 0.0), "deception": 0.6}
    # the in-flight request still runs v1 (threshold 0.5), a new one runs v2 (0.9)
    old_alert = mon.step(scores, 0, "x", "response").alerts[0]
    assert old_alert.policy_name == "v1" and old_alert.policy_version == policy_version(V1.encode())
    assert store.current.new_request("new").step(scores, 0, "x", "response").fired == ()


def test_unchanged_file_is_a_noop(store):
    before = store.current
    result = store.reload()
    assert result.ok and not result.changed and store.current is before


def test_invalid_edit_keeps_old_and_emits_policy_error(store):
    before = store.current
    store.path.write_text(BAD)
    result = store.reload()
    assert not result.ok and store.current is before
    assert result.attempted_version == policy_version(BAD.encode())
    (alert,) = store.alerts
    assert alert.kind == "policy_error" and alert.action == "reload_rejected"
    assert alert.policy_version == before.version
    assert f"{store.path}:6: rules.0.when.threshold:" in alert.detail
    assert result.attempted_version in alert.detail


def test_alert_callback_failure_does_not_break_reload(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(V1)

    def boom(alert):
        raise RuntimeError("sink down")

    store = PolicyStore(path, toy_pack(), on_alert=boom)
    store.load()
    path.write_text(BAD)
    assert not store.reload().ok


def test_concurrent_reloads_and_reads_are_safe(store):
    stop = threading.Event()
    seen: set[str] = set()

    def reader():
        while not stop.is_set():
            seen.add(store.current.name)

    t = threading.Thread(target=reader)
    t.start()
    texts = [V1, V2, BAD]
    workers = []
    for i in range(30):
        store.path.write_text(texts[i % 3])
        workers.append(threading.Thread(target=store.reload))
        workers[-1].start()
    for w in workers:
        w.join()
    stop.set()
    t.join()
    assert seen <= {"v1", "v2"}


def test_watcher_reloads_on_edit_and_rename(store):
    with PolicyWatcher(store, debounce_ms=50):
        time.sleep(0.3)  # let the watcher start
        store.path.write_text(V2)
        assert wait_for(lambda: store.current.name == "v2")
        # editors often write a temp file and rename it over the original
        tmp = store.path.with_suffix(".tmp")
        tmp.write_text(V1)
        os.replace(tmp, store.path)
        assert wait_for(lambda: store.current.name == "v1")
        store.path.write_text(BAD)
        assert wait_for(lambda: store.last_error is not None)
        assert store.current.name == "v1"
    # stopped: further edits are not picked up
    store.path.write_text(V2)
    time.sleep(0.5)
    assert store.current.name == "v1"


def test_sighup_triggers_reload(store):
    previous = install_sighup_handler(store)
    try:
        store.path.write_text(V2)
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: store.current.name == "v2")
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_load_failure_raises_and_current_is_unavailable(tmp_path):
    from monitor.policy import PolicyError

    path = tmp_path / "p.yaml"
    path.write_text(BAD)
    store = PolicyStore(path, toy_pack())
    with pytest.raises(PolicyError):
        store.load()
    with pytest.raises(RuntimeError, match="no policy loaded"):
        _ = store.current


def test_watcher_follows_a_configmap_style_symlink_swap(tmp_path):
    """Kubernetes mounts: policy.yaml -> ..data/policy.yaml, ..data -> ..v1; an update
    writes ..v2 and atomically renames a new ..data symlink over the old one."""
    (tmp_path / "..v1").mkdir()
    (tmp_path / "..v1" / "policy.yaml").write_text(V1)
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "policy.yaml").symlink_to("..data/policy.yaml")
    store = PolicyStore(tmp_path / "policy.yaml", toy_pack())
    store.load()
    with PolicyWatcher(store, debounce_ms=50):
        time.sleep(0.3)
        (tmp_path / "..v2").mkdir()
        (tmp_path / "..v2" / "policy.yaml").write_text(V2)
        (tmp_path / "..data_tmp").symlink_to("..v2")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        assert wait_for(lambda: store.current.name == "v2")
