"""``saeguard serve`` as a real process: JSON logs, SIGHUP reloads the policy, SIGTERM
during a stream stops intake (503), lets the stream finish, flushes alerts, exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server.conftest import ALERT_RULE, policy_text
from tests.redis_server import free_port
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[3]


def start_serve(guard_pack: Path, redis_url: str, tmp_path: Path, stream: str, shutdown_timeout: int,
                stdout: int | None = subprocess.PIPE) -> tuple[subprocess.Popen[str], str, Path]:
    """``saeguard serve`` as a subprocess (1 thread, alert policy): (process, base URL, policy file)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text("first", ALERT_RULE))
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAEGUARD_SHUTDOWN_TIMEOUT_S": str(shutdown_timeout)}
    cmd = [sys.executable, "-m", "monitor", "serve", "--port", str(port), "--pack", str(guard_pack),
           "--policy", str(policy), "--redis", redis_url, "--stream", stream,
           "--spool-dir", str(tmp_path / "spool"), "--threads", "1", "--no-watch"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}", policy


def test_serve_sighup_reload_and_sigterm_drains_stream_then_exits_0(guard_pack, redis_server, tmp_path):
    proc, base, policy = start_serve(guard_pack, redis_server.url, tmp_path, "proc:alerts", 60)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "daemon did not become ready"
            time.sleep(0.3)
        first = httpx.get(f"{base}/v1/policy", timeout=5).json()["version"]
        # SIGHUP: reload the edited policy
        policy.write_text(policy_text("second", ALERT_RULE))
        proc.send_signal(signal.SIGHUP)
        assert _eventually(lambda: httpx.get(f"{base}/v1/policy", timeout=5).json()["name"] == "second")
        second = httpx.get(f"{base}/v1/policy", timeout=5).json()["version"]
        assert second != first

        body = {"model": "default", "messages": [{"role": "user", "content": "Count from one to twenty."}],
                "max_tokens": 24, "temperature": 0, "stream": True}
        lines: list[str] = []
        refused = None
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if len(lines) == 2:  # the first token is out: now SIGTERM
                    proc.send_signal(signal.SIGTERM)
                    time.sleep(0.2)
                    refused = httpx.post(f"{base}/v1/chat/completions", timeout=10,
                                         json={**body, "stream": False, "max_tokens": 2})
        assert lines[-1] == "data: [DONE]"
        final = json.loads(lines[-2][6:])
        assert final["choices"][0]["finish_reason"] in ("length", "stop")
        assert refused is not None and refused.status_code == 503
        assert "shutting down" in refused.json()["error"]["message"]
        assert proc.wait(60) == 0
        # alerts were flushed to Redis before exit, with the reloaded policy's version
        with redis_server.client() as c:
            entries = c.xrange("proc:alerts")
        versions = {f[b"policy_version"].decode() for _, f in entries}
        assert entries and versions == {second}
        lines_err = [x for x in proc.stderr.read().splitlines() if x.strip()]
        assert [x for x in lines_err if not x.startswith("{")] == []  # JSON lines only
        logs = [json.loads(x) for x in lines_err]
        assert any(e.get("source") == "uvicorn" for e in logs)  # uvicorn's own lines too
        events = [e["event"] for e in logs]
        assert "runtime_started" in events and "drained" in events and "exited" in events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _eventually(pred, timeout: float = 10.0) -> bool:
    return eventually(pred, timeout, interval=0.1, ignore=(httpx.TransportError,))


def test_sigterm_with_three_streams_in_flight_completes_all_and_exits_0(guard_pack, redis_server, tmp_path):
    proc, base, _policy = start_serve(guard_pack, redis_server.url, tmp_path, "sigterm:alerts", 120,
                                      stdout=subprocess.DEVNULL)
    try:
        assert _eventually(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 120), \
            "daemon did not become ready"
        started = threading.Barrier(4)
        results: list[dict] = [{} for _ in range(3)]

        def client(i: int) -> None:
            body = {"model": "default", "messages": [{"role": "user", "content": f"Count from {i} to {i + 30}."}],
                    "max_tokens": 24, "temperature": 0, "stream": True}
            lines: list[str] = []
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=180) as r:
                results[i]["status"] = r.status_code
                for line in r.iter_lines():
                    if not line:
                        continue
                    lines.append(line)
                    if len(lines) == 2:  # the first token is out
                        started.wait(60)
            results[i]["lines"] = lines

        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        started.wait(120)  # all three streams have produced a token
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(180)
        assert proc.wait(120) == 0
        for r in results:
            assert r["status"] == 200
            assert r["lines"][-1] == "data: [DONE]"
            final = json.loads(r["lines"][-2][6:])
            assert final["choices"][0]["finish_reason"] in ("length", "stop")
            tokens = [json.loads(x[6:]) for x in r["lines"][1:-1]]
            assert len(tokens) >= 3  # the streams went on after SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
