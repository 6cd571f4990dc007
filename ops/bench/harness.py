"""Shared plumbing for the daemon benchmarks (``ops/bench/*.py``): a private
``redis-server`` and a real ``saeguard serve`` process on free loopback ports, a
streaming chat client that records what a chat service would see, and the JSON result
line every benchmark prints last.

Nothing here is a stand-in: the daemon is the same process ``./ops/run.sh`` starts (the
real model, the committed guard pack, a real Redis with AOF ``appendfsync always``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer, free_port  # noqa: E402  (one Redis helper for tests and benches)

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PACK = ROOT / "classifiers" / "packs" / "smollm2-135m-instruct"


def progress(event: str, **kw: Any) -> None:
    """One progress line on stderr (stdout's last line is the result)."""
    print(json.dumps({"event": event, **kw}, default=str), file=sys.stderr, flush=True)


def result_line(result: dict[str, Any]) -> None:
    """The benchmark's result: ONE JSON object, the last line on stdout."""
    print(json.dumps(result, separators=(", ", ": "), default=str), flush=True)


def machine() -> dict[str, Any]:
    """What the numbers were measured on (goes into every result)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = None
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    return {"cpus": os.cpu_count(), "cpu": cpu, "gpu": gpu, "python": platform.python_version()}


@contextlib.contextmanager
def private_redis(data_dir: Path | None = None) -> Iterator[RedisServer]:
    """A redis-server of the benchmark's own (killable, restartable on the same port)."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-redis-")))
        server = RedisServer(data_dir).start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class DaemonProc:
    """A ``saeguard serve`` subprocess; ``base`` is its URL."""

    proc: subprocess.Popen[str]
    base: str
    policy: Path
    log_path: Path

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.proc.returncode}); log tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not ready after {timeout:.0f}s; log tail:\n{self.log_tail()}")
            time.sleep(0.3)

    def log_tail(self, n: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def rss_bytes(self) -> int:
        """Resident set size of the daemon process (from /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def reload_policy(self, text: str) -> dict[str, Any]:
        self.policy.write_text(text)
        r = httpx.post(f"{self.base}/v1/policy/reload", headers=AUTH, timeout=30)
        r.raise_for_status()
        return dict(r.json())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


@contextlib.contextmanager
def daemon(redis_url: str, workdir: Path, policy_text: str | None = None, policy_file: Path | None = None,
           stream: str = "bench:alerts", threads: int = 2, extra: Sequence[str] = (),
           env: dict[str, str] | None = None, port: int | None = None) -> Iterator[DaemonProc]:
    """Start ``saeguard serve`` on a free port with the committed pack; stop it (SIGTERM) at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    policy = workdir / "policy.yaml"
    if policy_file is not None:
        policy.write_text(Path(policy_file).read_text())
    elif policy_text is not None:
        policy.write_text(policy_text)
    else:
        policy.write_text((ROOT / "policies" / "default.yaml").read_text())
    port = port or free_port()
    cmd = [sys.executable, "-m", "monitor", "serve", "--port", str(port), "--pack", str(PACK),
           "--policy", str(policy), "--redis", redis_url, "--stream", stream,
           "--spool-dir", str(workdir / "spool"), "--threads", str(threads), "--no-watch", *extra]
    full_env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SAEGUARD_AUTH_TOKEN": TOKEN, **(env or {})}
    log_path = workdir / f"daemon-{port}.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    d = DaemonProc(proc, f"http://127.0.0.1:{port}", policy, log_path)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


@dataclass
class StreamResult:
    """What one streaming chat request looked like from the client's side."""

    status: int = 0
    tokens: int = 0
    text: str = ""
    finish_reason: str | None = None
    policy_versions: set[str] = field(default_factory=set)
    header_policy_version: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    t_start: float = 0.0
    t_first: float | None = None
    t_end: float = 0.0
    token_times: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.finish_reason is not None


def stream_chat(client: httpx.Client, base: str, messages: list[dict[str, str]], max_tokens: int = 32,
                temperature: float = 0.0, seed: int | None = None, timeout: float = 300.0) -> StreamResult:
    """POST a streaming chat completion and read it to the end (``data: [DONE]``)."""
    body: dict[str, Any] = {"model": "default", "messages": messages, "max_tokens": max_tokens,
                            "temperature": temperature, "stream": True}
    if seed is not None:
        body["seed"] = seed
    res = StreamResult(t_start=time.perf_counter())
    try:
        with client.stream("POST", f"{base}/v1/chat/completions", json=body, headers=AUTH, timeout=timeout) as r:
            res.status = r.status_code
            res.header_policy_version = r.headers.get("x-saeguard-policy-version", "")
            if r.status_code != 200:
                r.read()
                res.error = _error_message(r.text)
                return res
            done = False
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    res.error = str(chunk["error"].get("message"))
                    continue
                choices = chunk.get("choices") or []
                guard = chunk.get("saeguard") or {}
                if "policy_version" in guard:
                    res.policy_versions.add(str(guard["policy_version"]))
                res.alerts.extend(guard.get("alerts") or [])
                if not choices:
                    continue
                ch = choices[0]
                delta = ch.get("delta") or {}
                content = delta.get("content")
                if content is not None and "role" not in delta and ch.get("finish_reason") is None:
                    now = time.perf_counter()
                    if res.t_first is None:
                        res.t_first = now
                    res.token_times.append(now)
                    res.tokens += 1
                    res.text += content
                if ch.get("finish_reason"):
                    res.finish_reason = ch["finish_reason"]
            if not done and res.error is None:
                res.error = "stream ended without [DONE]"
    except httpx.HTTPError as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.t_end = time.perf_counter()
    return res


def _error_message(text: str) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(json.loads(text)["error"]["message"])
    return text[:300]
