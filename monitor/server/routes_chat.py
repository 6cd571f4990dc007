"""``POST /v1/chat/completions``: OpenAI-compatible chat, streamed (SSE) or not, with the
guard attached.

Streaming: ``data: {chat.completion.chunk}\\n\\n`` events, then ``data: [DONE]``. The
first chunk carries ``delta.role`` and the prompt's scores; then one chunk per token;
the last chunk has ``finish_reason``. Every chunk has an extension field ``saeguard``:
``{"policy_version", "tokens": [per-position scores/fired/actions], "alerts": [...]}``.
A stop by policy ends with ``finish_reason: "content_filter"`` and the policy's message
as the last chunk's ``delta.content`` (non-streaming: appended to the message content).
Responses carry ``x-saeguard-policy-version`` and ``x-request-id``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from monitor.engine import ChatFormatError, SamplingParams
from monitor.guard.guard import scope_by_prompt_length
from monitor.policy.compiled import CompiledPolicy
from monitor.server.auth import require_auth
from monitor.server.errors import ApiError, error_body
from monitor.server.jobs import ChatJob, Failed, Finished, PromptScored, TokenOut
from monitor.server.runtime import Runtime
from monitor.server.schemas import ChatCompletionRequest
from monitor.server.worker import EventStream, QueueFullError

router = APIRouter()
_RID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _RID.match(given) else uuid.uuid4().hex


def check_model(runtime: Runtime, model: str | None) -> None:
    if model is not None and model not in (runtime.model_id, "default"):
        raise ApiError(404, f"model {model!r} is not served here; this sidecar serves {runtime.model_id!r} "
                            "(or use 'default')", param="model", code="model_not_found")


class Ticket:
    """One admitted request; ``release`` is idempotent."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.runtime.gate.leave()


def admit(runtime: Runtime) -> Ticket:
    reason = runtime.refuse_reason()
    if reason is not None or not runtime.gate.enter():
        raise ApiError(503, reason or "the server is shutting down and accepts no new requests",
                       code="unavailable", headers={"Retry-After": "5"})
    return Ticket(runtime)


def sampling_for(runtime: Runtime, body: ChatCompletionRequest, prompt_len: int) -> SamplingParams:
    s = runtime.settings
    n_ctx = runtime.backend.engine.n_ctx
    if prompt_len > s.max_prompt_tokens:
        raise ApiError(413, f"prompt is {prompt_len} tokens; this server accepts at most {s.max_prompt_tokens}",
                       param="messages", code="context_length_exceeded")
    room = n_ctx - prompt_len
    want = body.requested_max_tokens
    if want is not None and want > s.max_tokens_cap:
        raise ApiError(422, f"max_tokens is {want}; this server allows at most {s.max_tokens_cap}",
                       param="max_tokens")
    if room < 1 or (want is not None and want > room):
        raise ApiError(413, f"prompt is {prompt_len} tokens and max_tokens is {want or 1}; together they "
                            f"exceed the model's context of {n_ctx} tokens", param="messages",
                       code="context_length_exceeded")
    max_tokens = want if want is not None else min(s.default_max_tokens, s.max_tokens_cap, room)
    return SamplingParams(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p,
                          seed=body.seed)


def render_prompt(runtime: Runtime, messages: list[Any]) -> list[int]:
    try:
        return runtime.backend.engine.render([m.as_plain() for m in messages])
    except ChatFormatError as exc:
        raise ApiError(422, str(exc), param="messages") from None


def guard_json(policy: CompiledPolicy, reports: list[Any], alerts: list[Any], **extra: Any) -> dict[str, Any]:
    out = {"policy_version": policy.version, "tokens": [r.to_json() for r in reports],
           "alerts": [a.to_json_dict() for a in alerts]}
    out.update(extra)
    return out


@router.post("/v1/chat/completions", dependencies=[Depends(require_auth)])
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    runtime: Runtime = request.app.state.runtime
    check_model(runtime, body.model)
    prompt_ids = render_prompt(runtime, body.messages)
    params = sampling_for(runtime, body, len(prompt_ids))
    ticket = admit(runtime)
    rid = request_id_of(request)
    policy = runtime.store.current
    stream = EventStream(asyncio.get_running_loop())
    job = ChatJob(runtime.backend, stream, rid, prompt_ids, params, policy,
                  scope_by_prompt_length(len(prompt_ids)))
    try:
        runtime.scheduler.submit(job)
    except QueueFullError as exc:
        ticket.release()
        raise ApiError(503, str(exc), code="overloaded", headers={"Retry-After": "5"}) from None
    headers = {"x-saeguard-policy-version": policy.version, "x-request-id": rid}
    meta = {"id": f"chatcmpl-{rid}", "created": int(time.time()), "model": runtime.model_id}
    if body.stream:
        return StreamingResponse(_sse(stream, ticket, policy, meta, body.include_usage),
                                 media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"},
                                 background=BackgroundTask(ticket.release))
    try:
        return await _collect(stream, policy, meta, headers)
    finally:
        stream.cancel()
        ticket.release()


def _chunk(meta: dict[str, Any], delta: dict[str, Any], finish: str | None, guard: dict[str, Any]) -> str:
    payload = {**meta, "object": "chat.completion.chunk", "system_fingerprint": None,
               "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
               "saeguard": guard}
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _sse(stream: EventStream, ticket: Ticket, policy: CompiledPolicy, meta: dict[str, Any],
               include_usage: bool) -> AsyncIterator[str]:
    try:
        async for item in stream:
            if isinstance(item, PromptScored):
                yield _chunk(meta, {"role": "assistant", "content": ""}, None,
                             guard_json(policy, item.reports, item.alerts, scope="prompt",
                                        policy_name=policy.name, mode=policy.mode))
            elif isinstance(item, TokenOut):
                yield _chunk(meta, {"content": item.text}, None, guard_json(policy, item.reports, item.alerts))
            elif isinstance(item, Finished):
                delta = {"content": item.stop_message} if item.finish_reason == "content_filter" else {}
                yield _chunk(meta, delta, item.finish_reason,
                             guard_json(policy, item.reports, item.alerts, stop_message=item.stop_message,
                                        monitor_errors=list(item.monitor_errors)))
                if include_usage:
                    usage = _usage(item)
                    payload = {**meta, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                    yield f"data: {json.dumps(payload)}\n\n"
            elif isinstance(item, Failed):
                yield f"data: {json.dumps(error_body(item.status, item.message))}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        stream.cancel()
        ticket.release()


def _usage(item: Finished) -> dict[str, int]:
    return {"prompt_tokens": item.prompt_tokens, "completion_tokens": item.completion_tokens,
            "total_tokens": item.prompt_tokens + item.completion_tokens}


async def _collect(stream: EventStream, policy: CompiledPolicy, meta: dict[str, Any],
                   headers: dict[str, str]) -> JSONResponse:
    text: list[str] = []
    tokens: list[Any] = []
    alerts: list[Any] = []
    prompt: dict[str, Any] = {"tokens": [], "alerts": []}
    async for item in stream:
        if isinstance(item, PromptScored):
            prompt = guard_json(policy, item.reports, item.alerts)
            prompt.pop("policy_version")
            alerts.extend(item.alerts)
        elif isinstance(item, TokenOut):
            text.append(item.text)
            tokens.extend(item.reports)
            alerts.extend(item.alerts)
        elif isinstance(item, Failed):
            return JSONResponse(error_body(item.status, item.message), status_code=item.status, headers=headers)
        elif isinstance(item, Finished):
            tokens.extend(item.reports)
            alerts.extend(item.alerts)
            if item.finish_reason == "content_filter" and item.stop_message:
                text.append(item.stop_message)
            guard = guard_json(policy, tokens, alerts, policy_name=policy.name, mode=policy.mode,
                               prompt=prompt, stop_message=item.stop_message,
                               monitor_errors=list(item.monitor_errors))
            body = {**meta, "object": "chat.completion", "system_fingerprint": None,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                                 "logprobs": None, "finish_reason": item.finish_reason}],
                    "usage": _usage(item), "saeguard": guard}
            return JSONResponse(body, headers=headers)
    return JSONResponse(error_body(503, "the request was cancelled (server shutting down)"), status_code=503,
                        headers=headers)
