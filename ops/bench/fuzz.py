"""HTTP fuzzing of the running daemon: hypothesis-generated requests (valid-ish and
hostile) against every endpoint, counting server errors and crashes.

    OMP_NUM_THREADS=1 .venv/bin/python ops/bench/fuzz.py [--cases 10000] [--seed 0] [--threads 1] [--concurrency 1]

Starts a private ``redis-server`` and a real ``saeguard serve`` (real model, committed
pack, ``policies/default.yaml``) with ``--max-tokens-cap 2 --max-prompt-tokens 512`` so
that a request that does generate costs one or two decoding steps, then sends
``--cases`` generated requests, one after another or, with ``--concurrency N``, N at a
time from N client threads (each with its own connection pool), so that refusals, aborted
streams, scoring, policy reloads and chats overlap inside the continuous-batching worker.
Policy edits are serialised among themselves (they share one file) but overlap with
everything else:

- bodies of ``/v1/chat/completions`` (streamed or not) and ``/v1/score``: valid ones, and
  valid ones mutated (a field deleted, set to a wrong type / NaN / huge number / huge or
  odd unicode string / deep nesting, unknown fields added), whole bodies of the wrong
  type, broken JSON bytes (truncated, not UTF-8, BOM, random bytes), oversized bodies
  (with and without Content-Length), wrong Content-Type; a third of the streams are
  abandoned after their first event (the client hangs up);
- policy edits: a shipped policy mutated (``ops/bench/policy_mutants.py``) is written over
  the daemon's policy file and reloaded: 200, or 422 with every issue
  ``FILE:LINE: field: message`` and the old version still serving (the file is put back);
- ``/v1/policy/reload`` with and without (good, wrong, malformed) auth, ``/v1/models``,
  ``/readyz``, ``/healthz``, ``/metrics``, unknown paths and wrong methods; odd
  ``Authorization`` and ``x-request-id`` header bytes everywhere.

A **server error** is any 5xx, any error status whose body is not a JSON
``{"error": {"message": ...}}``, a 200 whose body is not what the endpoint promises
(JSON; a stream that does not end with ``data: [DONE]`` or carries a 5xx error event),
or a transport failure (connection reset, timeout). A **crash** is the daemon process
exiting or ``/healthz`` not answering; the daemon is then restarted and the run goes on.
Failing cases are saved (at most ``--keep`` of them) under ``--out``.

The strategies (:func:`cases`) and the checker (:func:`send_case`) are imported by
``tests/integration/server/test_daemon_fuzz.py``, which runs a few hundred of the same
cases against the in-process daemon.

The LAST line of stdout is one JSON object: ``cases``, ``concurrency``, ``server_errors``, ``crashes``,
``in_flight_at_end`` (requests the daemon still holds after the run: leaks; goal 0),
``aborted_streams``, ``cases_per_s``, ``per_endpoint`` ({endpoint: {cases, server_errors}}), ``status``
(histogram), ``kinds`` (cases per generator kind), ``failures_saved``, ``seed``,
``daemon_flags``, ``wall_s``, ``machine``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: `ops.bench.policy_mutants` needs the repo root
    sys.path.insert(0, str(ROOT))

from ops.bench.policy_mutants import ISSUE, mutate  # noqa: E402

# -- what one case is ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One HTTP request the fuzzer sends."""

    endpoint: str
    """Label for the counts (``chat``, ``chat_stream``, ``score``, ``reload``, ...)."""
    kind: str
    """Which generator made it (``valid``, ``mutated``, ``raw_bytes``, ...)."""
    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes | None = None
    chunked: bool = False
    """Send the body without Content-Length (chunked transfer encoding)."""
    abort: bool = False
    """Hang up after the first event of a stream (a client that goes away mid-response)."""
    policy_text: str | None = None
    """Write this over the daemon's policy file before the request (a policy edit)."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the case (body shortened) for the failure files."""
        body = None
        if self.body is not None:
            body = self.body[:4000].decode("utf-8", "backslashreplace")
            if len(self.body) > 4000:
                body += f"... ({len(self.body)} bytes)"
        return {"endpoint": self.endpoint, "kind": self.kind, "method": self.method, "path": self.path,
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
                "body": body, "chunked": self.chunked, "abort": self.abort,
                "policy_text": self.policy_text}


@dataclass
class Outcome:
    """What came back, and what was wrong with it (empty ``problems``: fine)."""

    status: int = 0
    """HTTP status; 0 on a transport failure, -1 when the client could not send the case."""
    problems: list[str] = field(default_factory=list)
    transport_error: bool = False
    elapsed_s: float = 0.0


# -- value strategies ------------------------------------------------------------------------

#: Strings a chat template or tokenizer may choke on.
_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>system\nx<|im_end|>", "\x00",
            "\ud800", "\udfff", "\ufeff", "\u202e", "👍🏽", "\r\n", "{{ messages }}", "{% raw %}", "%s%n"]


def short_text() -> st.SearchStrategy[str]:
    """Cheap prompt text: a few words, unicode, and now and then a special token or a lone
    surrogate (valid JSON when escaped, not encodable as UTF-8)."""
    return st.one_of(
        st.sampled_from(["Say hi.", "What is 2+2?", "", " ", "hello", "Write one word."]),
        st.text(max_size=40),
        st.lists(st.sampled_from(_SPECIAL + ["a", " b", "é"]), max_size=5).map("".join),
    )


def huge_text() -> st.SearchStrategy[str]:
    """Strings far over the prompt limit (cheap to tokenize, always refused)."""
    return st.builds(lambda n, unit: unit * n, st.integers(3000, 60000), st.sampled_from([" x", " 1", " é"]))


def deep(depth: int, leaf: Any = 0) -> Any:
    """``[[[...leaf...]]]`` or ``{"a": {"a": ...}}`` nested ``depth`` times."""
    out = leaf
    for i in range(depth):
        out = [out] if i % 2 else {"a": out}
    return out


def hostile_value() -> st.SearchStrategy[Any]:
    """A JSON value of the wrong type or range for any field."""
    scalars = st.one_of(
        st.none(), st.booleans(),
        st.integers(), st.sampled_from([0, -1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30]),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 1e308]),
        short_text(), st.sampled_from(_SPECIAL),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=4),
        st.dictionaries(st.text(max_size=8), scalars, max_size=3),
        st.builds(deep, st.sampled_from([2, 30, 200])),
        huge_text(),
    )


def message(roles: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    content = st.one_of(short_text(), st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                                     "text": short_text()}), max_size=2))
    return st.fixed_dictionaries({"role": st.sampled_from(roles), "content": content},
                                 optional={"name": short_text()})


def chat_body(model_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid chat request that generates at most 2 tokens."""
    return st.fixed_dictionaries(
        {"model": st.sampled_from([model_id, "default"]),
         "messages": st.lists(message(["system", "developer", "user", "assistant"]), min_size=1, max_size=3)
         .map(lambda ms: [*ms, {"role": "user", "content": "Hi"}] if ms[-1]["role"] == "assistant" else ms),
         "max_tokens": st.integers(1, 2)},
        optional={
            "temperature": st.one_of(st.sampled_from([0, 0.0, 0.7, 1, 2.0, 1e-300]), st.floats(0, 2)),
            "top_p": st.one_of(st.sampled_from([1, 0.5, 0.01, 1e-300, 5e-324]), st.floats(0, 1, exclude_min=True)),
            "seed": st.one_of(st.integers(0, 2**31), st.integers(-(2**63), 2**64 - 1)),
            "n": st.just(1),
            "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
            "user": short_text(),
            "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
            "frequency_penalty": st.just(0),
            "response_format": st.just({"type": "text"}),
        })


def score_body(model_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid /v1/score request (a short transcript)."""
    return st.fixed_dictionaries(
        {"messages": st.lists(message(["system", "user", "assistant"]), min_size=1, max_size=4)},
        optional={"model": st.sampled_from([model_id, "default"]),
                  "request_id": st.text(min_size=1, max_size=30),
                  "include_prompt": st.booleans()})


#: Fields a mutation must not delete or null: without them a valid request would
#: generate up to the server's default max_tokens (slow, and not what is tested).
_KEEP = {"max_tokens"}
#: Values a mutation may give max_tokens: all refused (or <= 2 tokens).
_MAX_TOKENS_HOSTILE = st.sampled_from([0, -1, 1.5, "1", "x", 10**9, 2**64, math.nan, [], {}, True, 100000])


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any] | Any:
    """A valid body with 1-3 hostile edits (delete / wrong value / extra key / nested)."""
    body: Any = dict(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(body, dict):
            break
        op = draw(st.sampled_from(["delete", "set", "set", "extra", "message", "replace"]))
        keys = sorted(body)
        if op == "delete" and [k for k in keys if k not in _KEEP]:
            body.pop(draw(st.sampled_from([k for k in keys if k not in _KEEP])))
        elif op == "set":
            key = draw(st.sampled_from(keys + ["stream", "temperature", "top_p", "seed", "n", "stop", "tools",
                                               "include_prompt", "request_id", "stream_options"]))
            body[key] = draw(_MAX_TOKENS_HOSTILE if key in _KEEP else hostile_value())
        elif op == "extra":
            body[draw(st.text(min_size=1, max_size=12))] = draw(hostile_value())
        elif op == "message" and isinstance(body.get("messages"), list) and body["messages"]:
            msgs = list(body["messages"])
            i = draw(st.integers(0, len(msgs) - 1))
            m = dict(msgs[i]) if isinstance(msgs[i], dict) else {}
            sub = draw(st.sampled_from(["role", "content", "name", "extra", "whole"]))
            if sub == "whole":
                msgs[i] = draw(hostile_value())
            else:
                m[sub if sub != "extra" else draw(st.text(min_size=1, max_size=8))] = draw(hostile_value())
                msgs[i] = m
            body["messages"] = msgs
        elif op == "replace":
            body = draw(hostile_value())
    return body


def _json_bytes(value: Any) -> bytes:
    # allow_nan: NaN / Infinity literals are what a sloppy client sends
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def broken_json(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """Bytes that are not a JSON document (or not UTF-8)."""
    good = _json_bytes(draw(base))
    how = draw(st.sampled_from(["truncate", "random", "latin1", "bom", "empty", "trailing", "utf16",
                                "comment", "single_quotes", "deep"]))
    if how == "deep":  # nesting far past any recursion limit, inside an otherwise sane body
        n = draw(st.sampled_from([500, 1000, 5000, 100000]))
        inner = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        nested = inner[0] * n + b"1" + inner[1] * n
        key = draw(st.sampled_from([b"messages", b"response_format", b"metadata", b"x"]))
        return b'{"model": "default", "max_tokens": 1, "' + key + b'": ' + nested + b"}"
    if how == "truncate":
        return good[: draw(st.integers(0, max(0, len(good) - 1)))]
    if how == "random":
        return draw(st.binary(max_size=200))
    if how == "latin1":
        return good.replace(b'"Hi"', b'"H\xe9\xff"') + b"\xff"
    if how == "bom":
        return b"\xef\xbb\xbf" + good
    if how == "empty":
        return b""
    if how == "trailing":
        return good + b"}"
    if how == "utf16":
        return good.decode().encode("utf-16")
    if how == "comment":
        return b"// hi\n" + good
    return good.replace(b'"', b"'")


def oversized() -> st.SearchStrategy[bytes]:
    """A syntactically valid body over the server's 4 MiB limit."""
    return st.integers(4 * 1024 * 1024 + 1, 5 * 1024 * 1024).map(
        lambda n: b'{"model": "default", "messages": [{"role": "user", "content": "' + b"x" * n + b'"}]}')


# -- headers ----------------------------------------------------------------------------------

#: Header values a client can put on the wire (h11 refuses control characters itself).
_HEADER_BYTES = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c == 9 or 32 <= c != 127).strip())


def mostly(usual: Any, other: st.SearchStrategy[Any], p_usual: float) -> st.SearchStrategy[Any]:
    """``usual`` with probability ``p_usual``, else a draw from ``other`` (a PRNG seeded by
    hypothesis decides: hypothesis's own choices would not keep the proportion)."""

    @st.composite
    def pick(draw: st.DrawFn) -> Any:
        if draw(st.randoms(use_true_random=True)).random() < p_usual:
            return usual
        return draw(other)

    return pick()


def auth_header(token: str) -> st.SearchStrategy[tuple[tuple[bytes, bytes], ...]]:
    """The right token 85% of the time (a 401 hides what the body would have done);
    otherwise missing, wrong, malformed or odd bytes."""
    bad = st.one_of(
        st.just(()),
        st.sampled_from([b"Bearer wrong", b"Bearer", b"Basic dXNlcjpwYXNz", b"bearer " + token.encode(),
                         b"Bearer  " + token.encode(),
                         b"Bearer " + token.encode() + b"x", b"Token " + token.encode(), b"Bearer \xff\xfe",
                         b"Bearer " + b"a" * 8000]).map(lambda v: ((b"authorization", v),)),
        _HEADER_BYTES.map(lambda v: ((b"authorization", v),)),
    )
    return mostly(((b"authorization", f"Bearer {token}".encode()),), bad, 0.85)


def extra_headers() -> st.SearchStrategy[tuple[tuple[bytes, bytes], ...]]:
    """Content-Type (application/json 90% of the time) and x-request-id variants."""
    ctype = mostly(b"application/json", st.sampled_from([
        b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
        b"application/json; charset=utf-16", b"application/vnd.api+json", b"", b"\xff/\xfe"]), 0.9)
    rid = st.one_of(st.just(None), st.sampled_from([b"req-1", b"a" * 500, b"../../etc", b"\xc3\xa9t\xc3\xa9"]),
                    _HEADER_BYTES)
    return st.builds(lambda c, r: ((b"content-type", c),) + (((b"x-request-id", r),) if r is not None else ()),
                     ctype, rid)


# -- whole cases --------------------------------------------------------------------------------


def _with_stream(bodies: st.SearchStrategy[Any], stream: bool) -> st.SearchStrategy[Any]:
    return bodies.map(lambda b: {**b, "stream": stream} if isinstance(b, dict) else b)


#: Weights per 1000 cases. About a fifth are valid bodies that run the model (a forward
#: pass and at most 2 generated tokens); mutated bodies that stay valid add a few more.
WEIGHTS: dict[str, int] = {
    "chat:valid": 50, "chat:mutated": 110, "chat:wrong_body": 25, "chat:raw_bytes": 30,
    "chat_stream:valid": 50, "chat_stream:mutated": 110, "chat_stream:wrong_body": 25, "chat_stream:raw_bytes": 30,
    "score:valid": 60, "score:mutated": 110, "score:wrong_body": 25, "score:raw_bytes": 30,
    "reload": 30, "policy_edit": 50, "get": 200, "odd_route": 58, "oversized": 2,
}
_PATHS = {"chat": "/v1/chat/completions", "chat_stream": "/v1/chat/completions", "score": "/v1/score"}


def cases(token: str, model_id: str, weights: dict[str, int] | None = None) -> st.SearchStrategy[Case]:
    """Every kind of request the fuzzer sends, drawn with :data:`WEIGHTS`."""
    weights = weights or WEIGHTS
    bases = {"chat": _with_stream(chat_body(model_id), False), "chat_stream": _with_stream(chat_body(model_id), True),
             "score": score_body(model_id)}
    table: list[tuple[int, str]] = []
    total = 0
    for name, w in weights.items():
        total += w
        table.append((total, name))

    @st.composite
    def one(draw: st.DrawFn) -> Case:
        # a real PRNG seeded by hypothesis: its own integer draws favour small values and
        # range bounds, which would skew the weights
        pick = draw(st.randoms(use_true_random=True)).randrange(total)
        name = next(n for bound, n in table if pick < bound)
        auth = draw(auth_header(token))
        hdrs = draw(extra_headers())
        if ":" in name:
            endpoint, kind = name.split(":")
            base = bases[endpoint]
            chunked = False
            if kind == "valid":
                body = _json_bytes(draw(base))
            elif kind == "mutated":
                body = _json_bytes(draw(mutated(base)))
            elif kind == "wrong_body":
                body = _json_bytes(draw(hostile_value()))
            else:
                body = draw(broken_json(base))
                chunked = draw(st.booleans())
            abort = endpoint == "chat_stream" and draw(mostly(False, st.just(True), 0.65))
            return Case(endpoint, kind, "POST", _PATHS[endpoint], auth + hdrs, body, chunked, abort)
        if name == "policy_edit":
            base = draw(st.sampled_from(["default", "strict", "shadow"]))
            text, _ops = mutate((ROOT / "policies" / f"{base}.yaml").read_text(),
                                random.Random(draw(st.integers(0, 2**32 - 1))))
            return Case("policy_edit", "policy_edit", "POST", "/v1/policy/reload",
                        ((b"authorization", f"Bearer {token}".encode()),), policy_text=text)
        if name == "reload":
            body = draw(st.one_of(st.just(b""), hostile_value().map(_json_bytes)))
            return Case("reload", "reload", "POST", "/v1/policy/reload", auth + hdrs, body)
        if name == "get":
            endpoint, path = draw(st.sampled_from([("models", "/v1/models"), ("readyz", "/readyz"),
                                                   ("healthz", "/healthz"), ("metrics", "/metrics"),
                                                   ("policy", "/v1/policy")]))
            return Case(endpoint, "get", "GET", path, auth + hdrs)
        if name == "odd_route":
            method, path = draw(st.sampled_from(_ODD_ROUTES))
            body = draw(st.one_of(st.none(), st.binary(max_size=50)))
            return Case("other", "odd_route", method, path, auth, body)
        endpoint = draw(st.sampled_from(["chat", "score"]))
        return Case(endpoint, "oversized", "POST", _PATHS[endpoint], auth + hdrs, draw(oversized()),
                    draw(st.booleans()))

    return one()


_ODD_ROUTES = [("GET", "/v1/chat/completions"), ("PUT", "/v1/score"), ("DELETE", "/v1/models"),
               ("POST", "/v1/models"), ("GET", "/v1/nope"), ("POST", "/%00"), ("GET", "/v1/score?x=%ff"),
               ("GET", "/v1/chat/completions/../../etc/passwd"), ("OPTIONS", "/metrics"),
               ("PATCH", "/v1/policy/reload"), ("GET", "/" + "a" * 3000), ("HEAD", "/healthz")]


# -- sending and judging ------------------------------------------------------------------------

_JSON_OK = {"/v1/chat/completions", "/v1/score", "/v1/policy/reload", "/v1/models", "/readyz", "/healthz",
            "/v1/policy"}


def _is_error_json(text: str) -> bool:
    try:
        err = json.loads(text)["error"]
        return isinstance(err, dict) and isinstance(err.get("message"), str) and bool(err["message"])
    except (ValueError, KeyError, TypeError):
        return False


def _check_stream(lines: Iterator[str], out: Outcome) -> None:
    done = False
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            continue
        if done:
            out.problems.append("data after [DONE]")
        try:
            chunk = json.loads(data)
        except ValueError:
            out.problems.append(f"stream event is not JSON: {data[:200]!r}")
            continue
        if "error" in chunk:
            etype = (chunk.get("error") or {}).get("type") if isinstance(chunk.get("error"), dict) else None
            if etype in (None, "error", "api_error", "server_error"):
                out.problems.append(f"5xx error event in stream: {data[:300]}")
    if not done:
        out.problems.append("stream ended without data: [DONE]")


def _body_iter(body: bytes) -> Iterator[bytes]:
    for i in range(0, len(body), 65536):
        yield body[i:i + 65536]


def _judge(case: Case, r: httpx.Response, out: Outcome) -> None:
    out.status = r.status_code
    ctype = r.headers.get("content-type", "")
    if r.status_code == 200 and ctype.startswith("text/event-stream"):
        if case.abort:
            next(r.iter_lines(), None)  # the first event, then hang up (the caller closes)
            return
        _check_stream(r.iter_lines(), out)
        return
    text = r.read().decode("utf-8", "replace")
    if r.status_code >= 500:
        out.problems.append(f"HTTP {r.status_code}: {text[:300]}")
    if r.status_code >= 400 and case.method != "HEAD" and not _is_error_json(text):
        out.problems.append(f"HTTP {r.status_code} error body is not a JSON error: {text[:300]!r}")
    elif r.status_code < 400 and case.method != "HEAD" and case.path in _JSON_OK:
        try:
            json.loads(text)
        except ValueError:
            out.problems.append(f"HTTP {r.status_code} body is not JSON: {text[:300]!r}")


def send_case(client: httpx.Client, case: Case, timeout: float = 120.0, policy_path: Path | None = None) -> Outcome:
    """Send ``case`` and judge the answer (see the module docstring for what is a problem).
    A policy edit needs the daemon's ``policy_path``; it is put back afterwards."""
    if case.policy_text is not None:
        return _policy_edit(client, case, policy_path, timeout)
    out = Outcome()
    t0 = time.perf_counter()
    content: Any = None
    if case.body is not None:
        content = _body_iter(case.body) if case.chunked else case.body
    headers = list(case.headers)
    try:
        req = client.build_request(case.method, case.path, content=content, headers=headers, timeout=timeout)
        r = client.send(req, stream=True)
        try:
            _judge(case, r, out)
        finally:
            r.close()
    except httpx.LocalProtocolError:
        out.status = -1  # h11 would not put these bytes on the wire: nothing was sent
    except httpx.HTTPError as exc:
        if case.kind == "oversized" and isinstance(exc, httpx.WriteError | httpx.RemoteProtocolError | httpx.ReadError):
            # the server answered 413 and closed while we were still sending 4 MiB: that is the refusal
            out.status = 413
        else:
            out.transport_error = True
            out.problems.append(f"transport: {type(exc).__name__}: {exc}")
    out.elapsed_s = time.perf_counter() - t0
    return out


#: One policy edit at a time: concurrent edits would overwrite each other's file.
_POLICY_LOCK = threading.Lock()


def _policy_edit(client: httpx.Client, case: Case, policy_path: Path | None, timeout: float) -> Outcome:
    with _POLICY_LOCK:
        return _policy_edit_locked(client, case, policy_path, timeout)


def _policy_edit_locked(client: httpx.Client, case: Case, policy_path: Path | None, timeout: float) -> Outcome:
    """Write a mutated policy, reload: 200 (valid) or 422 whose every issue is
    ``FILE:LINE: field: message`` for that file while the old version keeps serving."""
    out = Outcome()
    if policy_path is None or case.policy_text is None:
        out.status = -1
        return out
    t0 = time.perf_counter()
    original = policy_path.read_bytes()
    headers = dict((k.decode(), v.decode()) for k, v in case.headers)
    try:
        before = client.get("/v1/policy", headers=headers, timeout=timeout).json()["version"]
        policy_path.write_text(case.policy_text)
        r = client.post("/v1/policy/reload", headers=headers, timeout=timeout)
        out.status = r.status_code
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
        if r.status_code == 422 and isinstance(body, dict):
            if body.get("version") != before or (body.get("policy") or {}).get("version") != before:
                out.problems.append(f"rejected edit changed the serving version: {before} -> {body.get('version')}")
            issues = body.get("issues") or []
            if not issues:
                out.problems.append("rejected without issues")
            for issue in issues:
                m = ISSUE.match(issue)
                if m is None or m["file"] != str(policy_path):
                    out.problems.append(f"issue is not {policy_path}:LINE: field: message: {issue[:300]!r}")
        elif r.status_code != 200:
            out.problems.append(f"policy reload answered HTTP {r.status_code}: {r.text[:300]}")
    except httpx.HTTPError as exc:
        out.transport_error = True
        out.problems.append(f"transport: {type(exc).__name__}: {exc}")
    finally:
        policy_path.write_bytes(original)
        with contextlib.suppress(httpx.HTTPError):
            client.post("/v1/policy/reload", headers=dict((k.decode(), v.decode()) for k, v in case.headers),
                        timeout=timeout)
    out.elapsed_s = time.perf_counter() - t0
    return out


def in_flight(client: httpx.Client, headers: dict[str, str], wait_s: float = 15.0) -> int:
    """Requests the daemon still holds (admitted + queued) once the client is done: waits
    up to ``wait_s`` for aborted streams to wind down; > 0 means a leaked ticket/job."""
    deadline = time.monotonic() + wait_s
    held = -1
    while time.monotonic() < deadline:
        worker = client.get("/readyz", headers=headers, timeout=10).json().get("worker", {})
        held = int(worker.get("in_flight", 0)) + int(worker.get("queue_depth", 0))
        if held == 0:
            return 0
        time.sleep(0.5)
    return held


def healthy(client: httpx.Client) -> bool:
    """``/healthz`` answers 200 within 10 s."""
    try:
        return client.get("/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


# -- the benchmark --------------------------------------------------------------------------------

DAEMON_FLAGS = ["--max-tokens-cap", "2", "--max-prompt-tokens", "512"]


class Tally:
    """Counts and saved failures of a run."""

    def __init__(self, out_dir: Path, keep: int) -> None:
        self.cases = 0
        self.server_errors = 0
        self.crashes = 0
        self.status: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.per_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
        self.out_dir = out_dir
        self.keep = keep
        self.saved: list[str] = []
        self.slowest = 0.0
        self.seconds: Counter[str] = Counter()
        self.kinds_abort = 0
        self.slow_cases: list[tuple[float, str]] = []

    def record(self, case: Case, outcome: Outcome, crashed: bool) -> None:
        self.cases += 1
        self.status[str(outcome.status)] += 1
        self.kinds[case.kind] += 1
        self.kinds_abort += int(case.abort and outcome.status == 200)
        ep = self.per_endpoint[case.endpoint]
        ep["cases"] += 1
        self.slowest = max(self.slowest, outcome.elapsed_s)
        self.seconds[f"{case.endpoint}:{case.kind}"] += outcome.elapsed_s
        if outcome.elapsed_s > 2.0:
            self.slow_cases.append((outcome.elapsed_s, json.dumps(case.describe())[:300]))
        if outcome.problems and not crashed:
            self.server_errors += 1
            ep["server_errors"] += 1
        if crashed:
            self.crashes += 1
            ep["crashes"] += 1
        if (outcome.problems or crashed) and len(self.saved) < self.keep:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"failure-{len(self.saved):03d}.json"
            path.write_text(json.dumps({"case": case.describe(), "status": outcome.status, "crashed": crashed,
                                        "problems": outcome.problems}, indent=1))
            self.saved.append(str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--cases", type=int, default=10000, help="generated requests to send (default 10000)")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed (same seed, same cases)")
    ap.add_argument("--threads", type=int, default=1, help="daemon torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/saeguard-fuzz"),
                    help="where failing cases and the daemon's log are written")
    ap.add_argument("--keep", type=int, default=20, help="failing cases to save at most")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="requests in flight at once, from as many client threads (default 1)")
    args = ap.parse_args()
    if args.concurrency < 1:
        ap.error("--concurrency must be >= 1")

    from hypothesis import HealthCheck, Phase, given, seed, settings

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness  # the bench plumbing (puts the repo root on sys.path)

    args.out.mkdir(parents=True, exist_ok=True)
    tally = Tally(args.out / "failures", args.keep)
    t_start = time.perf_counter()
    with contextlib.ExitStack() as outer:
        redis = outer.enter_context(harness.private_redis())
        stack = contextlib.ExitStack()
        state: dict[str, Any] = {}

        def start() -> None:
            d = stack.enter_context(harness.daemon(redis.url, args.out / "daemon", threads=args.threads,
                                                   extra=DAEMON_FLAGS))
            state["daemon"] = d
            state["client"] = stack.enter_context(httpx.Client(base_url=d.base, timeout=120))
            state["model_id"] = state["client"].get("/v1/models", headers=harness.AUTH).json()["data"][0]["id"]

        start()
        outer.callback(stack.close)
        harness.progress("daemon_ready", base=state["daemon"].base, model=state["model_id"])

        lock = threading.Lock()  # the tally and the crash flag
        local = threading.local()
        clients: list[httpx.Client] = []
        pool = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="fuzz")
        outer.callback(pool.shutdown)
        pending: set[Future[None]] = set()
        submitted = [0]

        def thread_client() -> httpx.Client:
            # one connection pool per client thread and daemon incarnation
            if getattr(local, "daemon", None) is not state["daemon"]:
                local.daemon = state["daemon"]
                local.client = httpx.Client(base_url=state["daemon"].base, timeout=120)
                with lock:
                    clients.append(local.client)
            client: httpx.Client = local.client
            return client

        def work(case: Case) -> None:
            d = state["daemon"]
            client = state["client"] if args.concurrency == 1 else thread_client()
            outcome = send_case(client, case, policy_path=d.policy)
            crashed = d.proc.poll() is not None or (
                (outcome.transport_error or tally.cases % 200 == 0) and not healthy(client))
            with lock:
                # one crash, however many in-flight requests saw it (their failures still count)
                crashed = crashed and not state.get("crashed")
                tally.record(case, outcome, crashed)
                if crashed:
                    harness.progress("crash", case=case.describe(), problems=outcome.problems,
                                     log_tail=d.log_tail(2000))
                    state["crashed"] = True
                if tally.cases % 250 == 0:
                    harness.progress("fuzz", cases=tally.cases, server_errors=tally.server_errors,
                                     crashes=tally.crashes, concurrency=args.concurrency,
                                     cases_per_s=round(tally.cases / (time.perf_counter() - t_start), 1))

        def drain() -> None:
            while pending:
                done, _ = wait(pending)
                pending.difference_update(done)
                for f in done:
                    f.result()

        def restart_if_crashed() -> None:
            if state.get("crashed"):
                drain()
                for c in clients:
                    c.close()
                clients.clear()
                stack.close()
                start()
                state["crashed"] = False

        def one_case(case: Case) -> None:
            if submitted[0] >= args.cases:
                return
            submitted[0] += 1
            if args.concurrency == 1:
                work(case)
                restart_if_crashed()
                return
            restart_if_crashed()
            while len(pending) >= args.concurrency:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                pending.difference_update(done)
                for f in done:
                    f.result()
            pending.add(pool.submit(work, case))

        strategy = cases(harness.TOKEN, state["model_id"])
        rounds = 0
        while submitted[0] < args.cases:  # hypothesis may stop a little short of max_examples
            before = submitted[0]
            run: Callable[[], None] = seed(args.seed + rounds)(settings(
                max_examples=args.cases - submitted[0], deadline=None, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck))(given(case=strategy)(one_case)))
            run()
            rounds += 1
            if submitted[0] == before:
                break
        drain()
        restart_if_crashed()
        for c in clients:
            c.close()
        final_health = healthy(state["client"]) and state["daemon"].proc.poll() is None
        if not final_health:
            tally.crashes += 1
        leaked = in_flight(state["client"], harness.AUTH) if final_health else -1
    wall = time.perf_counter() - t_start
    for secs, what in sorted(tally.slow_cases, reverse=True)[:5]:
        harness.progress("slow_case", seconds=round(secs, 2), case=what)
    harness.result_line({
        "cases": tally.cases, "server_errors": tally.server_errors, "crashes": tally.crashes,
        "in_flight_at_end": leaked, "aborted_streams": tally.kinds_abort,
        "cases_per_s": round(tally.cases / wall, 2), "wall_s": round(wall, 1),
        "slowest_case_s": round(tally.slowest, 2),
        "seconds_by_kind": {k: round(v, 1) for k, v in tally.seconds.most_common()},
        "per_endpoint": {k: dict(v) for k, v in sorted(tally.per_endpoint.items())},
        "status": dict(sorted(tally.status.items())), "kinds": dict(sorted(tally.kinds.items())),
        "failures_saved": tally.saved, "seed": args.seed, "daemon_flags": DAEMON_FLAGS,
        "threads": args.threads, "concurrency": args.concurrency, "machine": harness.machine(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
