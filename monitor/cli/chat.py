"""``saeguard chat``: an interactive terminal client for a running daemon.

The answer streams as it is generated; a status line shows the current token's score
for each concept (and the highest so far), and interventions are marked in the text:
``[CLAMP]`` where a clamp starts, ``[STEER]``, ``[ALERT rule]`` and ``[STOP]`` with the
policy's message. On a terminal the status line is pinned to the bottom row (ANSI scroll
region); otherwise (a pipe) it is printed after each answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8765"
RESET, BOLD, DIM, RED, YELLOW, CYAN = "\x1b[0m", "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[33m", "\x1b[36m"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("chat", help="interactive chat with a running daemon, showing live concept scores")
    p.add_argument("--url", default=DEFAULT_URL, help=f"daemon base URL (default {DEFAULT_URL})")
    p.add_argument("--token", default=None, help="bearer token (default: $SAEGUARD_AUTH_TOKEN)")
    p.add_argument("--model", default="default", help="model id to send (default: 'default')")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--once", metavar="PROMPT", help="ask one question and exit (no prompt loop)")
    p.add_argument("--plain", action="store_true", help="no colours or pinned status line")
    p.set_defaults(func=run)


class Display:
    """Renders one streamed answer with markers and a concept status line."""

    def __init__(self, out: TextIO, live: bool, color: bool) -> None:
        self.out = out
        self.live = live
        self.color = color
        self.maxima: dict[str, float] = {}
        self.current: dict[str, float] = {}
        self.clamping = False
        self.alerts: list[str] = []
        self.prompt_alerts: list[str] = []

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def begin(self) -> None:
        self.maxima, self.current, self.clamping, self.alerts = {}, {}, False, []
        if self.live:
            rows = shutil.get_terminal_size().lines
            self.out.write(f"\n\x1b[1;{rows - 1}r\x1b[{rows - 1};1H")

    def close(self) -> None:
        if self.live:
            rows = shutil.get_terminal_size().lines
            self.out.write(f"\x1b7\x1b[{rows};1H\x1b[2K\x1b8\x1b[r")
            self.out.flush()

    def status_line(self) -> str:
        parts = []
        for name in sorted(self.current or self.maxima):
            cur, top = self.current.get(name, 0.0), self.maxima.get(name, 0.0)
            parts.append(f"{name} {cur:.2f} (max {top:.2f})")
        line = " | ".join(parts) or "no scores"
        if self.alerts:
            line += f" | alerts: {', '.join(self.alerts[-3:])}"
        return line

    def _status(self) -> None:
        if self.live:
            rows = shutil.get_terminal_size().lines
            self.out.write(f"\x1b7\x1b[{rows};1H\x1b[2K{self._c(CYAN, self.status_line())}\x1b8")

    def chunk(self, chunk: dict[str, Any]) -> None:
        """Render one chat.completion.chunk (with its ``saeguard`` field)."""
        guard = chunk.get("saeguard") or {}
        if guard.get("scope") == "prompt":
            self.prompt_alerts = [a["rule_id"] for a in guard.get("alerts", [])]
            if self.prompt_alerts:
                self.out.write(self._c(YELLOW, f"[PROMPT ALERT {', '.join(self.prompt_alerts)}] "))
        for rep in guard.get("tokens", []):
            if rep.get("scope") != "response":
                continue
            self.current = dict(rep["scores"])
            for k, v in self.current.items():
                self.maxima[k] = max(v, self.maxima.get(k, 0.0))
            clamp = any(a.startswith("clamp:") for a in rep["actions"])
            if clamp and not self.clamping:
                self.out.write(self._c(YELLOW + BOLD, "[CLAMP]"))
            self.clamping = clamp
            if any(a.startswith("steer:") for a in rep["actions"]):
                self.out.write(self._c(YELLOW, "[STEER]"))
        for alert in guard.get("alerts", []):
            if guard.get("scope") != "prompt":
                self.alerts.append(alert.get("rule_id") or alert.get("action", "?"))
                self.out.write(self._c(RED, f"[ALERT {alert.get('rule_id') or alert.get('action')}]"))
        choice = (chunk.get("choices") or [{}])[0]
        delta = choice.get("delta") or {}
        finish = choice.get("finish_reason")
        if finish == "content_filter":
            self.out.write(self._c(RED + BOLD, f" [STOP] {delta.get('content') or ''}"))
        elif delta.get("content"):
            self.out.write(delta["content"])
        for err in guard.get("monitor_errors") or []:
            self.out.write(self._c(RED, f" [MONITOR ERROR: {err}]"))
        self._status()
        self.out.flush()

    def end(self, finish: str | None) -> None:
        self.out.write("\n")
        if not self.live:
            self.out.write(self._c(DIM, f"[{finish}] {self.status_line()}") + "\n")
        self.out.flush()


def stream_answer(client: Any, url: str, body: dict[str, Any], headers: dict[str, str], display: Display) -> str:
    """POST one streaming request; render it; return the answer text ('' on error)."""
    from monitor.cli import CliError

    text: list[str] = []
    finish = None
    display.begin()
    try:
        with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
            if r.status_code != 200:
                r.read()
                try:
                    msg = r.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    msg = r.text[:300]
                raise CliError(f"HTTP {r.status_code}: {msg}")
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise CliError(f"stream error: {chunk['error'].get('message')}")
                display.chunk(chunk)
                choice = (chunk.get("choices") or [{}])[0]
                finish = choice.get("finish_reason") or finish
                content = (choice.get("delta") or {}).get("content")
                if content and choice.get("finish_reason") != "content_filter":
                    text.append(content)
    finally:
        display.close()
    display.end(finish)
    return "".join(text)


def run(args: argparse.Namespace) -> int:
    import logging

    import httpx

    from monitor.cli import CliError

    logging.getLogger("httpx").setLevel(logging.WARNING)  # no per-request lines between answers

    token = args.token or os.environ.get("SAEGUARD_AUTH_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tty = sys.stdout.isatty() and not args.plain
    display = Display(sys.stdout, live=tty, color=tty)
    messages: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    url = args.url.rstrip("/")
    with httpx.Client(timeout=httpx.Timeout(10.0, read=300.0)) as client:
        try:
            info = client.get(f"{url}/v1/policy", headers=headers)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the daemon at {url}: {exc}") from None
        if info.status_code == 200:
            pol = info.json()
            print(f"policy {pol['name']} ({pol['mode']}, {pol['version'][:12]}); Ctrl-D to quit", file=sys.stderr)
        while True:
            if args.once is not None:
                prompt = args.once
            else:
                try:
                    prompt = input("you> ")
                except EOFError:
                    print(file=sys.stderr)
                    return 0
                if not prompt.strip():
                    continue
            messages.append({"role": "user", "content": prompt})
            body = {"model": args.model, "messages": messages, "max_tokens": args.max_tokens,
                    "temperature": args.temperature, "stream": True}
            try:
                answer = stream_answer(client, url, body, headers, display)
            except httpx.TransportError as exc:
                raise CliError(f"connection to {url} failed: {exc}") from None
            except CliError as exc:
                if args.once is not None:
                    raise
                print(f"error: {exc}", file=sys.stderr)
                messages.pop()
                continue
            messages.append({"role": "assistant", "content": answer})
            if args.once is not None:
                return 0
