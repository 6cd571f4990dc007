"""``POST /v1/score``: monitor-only scoring of a conversation generated elsewhere.

The transcript is rendered with the chat template (no generation prompt); assistant
turns are scope ``response``, everything else ``prompt``. One forward pass, the guard
attached with ``intervene=False``: scores, fired rules and alerts (published to the
stream like any other), never a clamp, steer or stop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from monitor.engine.chat import ChatFormatError, render_chat
from monitor.guard.guard import scope_by_spans
from monitor.server.auth import require_auth
from monitor.server.errors import ApiError, error_body
from monitor.server.jobs import Failed, Scored, ScoreJob
from monitor.server.routes_chat import admit, check_model, request_id_of
from monitor.server.runtime import Runtime
from monitor.server.schemas import ScoreRequest
from monitor.server.worker import EventStream, QueueFullError

router = APIRouter()

MONITOR_ONLY = "not possible: monitor-only"


def transcript_spans(tokenizer: Any, messages: Sequence[dict[str, str]],
                     end_ids: frozenset[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the whole transcript and the ``[start, end)`` spans of assistant turns'
    contents (the turn header and the end-of-turn token excluded)."""
    ids = render_chat(tokenizer, messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render_chat(tokenizer, messages[:i], add_generation_prompt=True)) if i else 0
        end = len(render_chat(tokenizer, messages[: i + 1], add_generation_prompt=False))
        while end > start and (ids[end - 1] in end_ids or tokenizer.decode([ids[end - 1]]).strip() == ""):
            end -= 1
        if end > start:
            spans.append((start, end))
    return ids, spans


@router.post("/v1/score", dependencies=[Depends(require_auth)])
async def score(body: ScoreRequest, request: Request) -> Any:
    runtime: Runtime = request.app.state.runtime
    check_model(runtime, body.model)
    engine = runtime.backend.engine
    messages = [m.as_plain() for m in body.messages]
    try:
        ids, spans = transcript_spans(engine.tokenizer, messages, frozenset(engine.stop_token_ids))
    except ChatFormatError as exc:
        raise ApiError(422, str(exc), param="messages") from None
    limit = min(runtime.settings.max_prompt_tokens, engine.n_ctx - 1)
    if len(ids) > limit:
        raise ApiError(413, f"conversation is {len(ids)} tokens; at most {limit} can be scored",
                       param="messages", code="context_length_exceeded")
    ticket = admit(runtime)
    rid = body.request_id or request_id_of(request) or uuid.uuid4().hex
    policy = runtime.store.current
    stream = EventStream(asyncio.get_running_loop())
    try:
        try:
            runtime.scheduler.submit(ScoreJob(runtime.backend, stream, rid, ids, policy, scope_by_spans(spans)))
        except QueueFullError as exc:
            raise ApiError(503, str(exc), code="overloaded") from None
        headers = {"x-saeguard-policy-version": policy.version, "x-request-id": rid}
        async for item in stream:
            if isinstance(item, Failed):
                return JSONResponse(error_body(item.status, item.message), status_code=item.status, headers=headers)
            if isinstance(item, Scored):
                return JSONResponse(_body(runtime, rid, policy, item, spans, body.include_prompt), headers=headers)
        raise ApiError(503, "the request was cancelled (server shutting down)")
    finally:
        stream.cancel()
        ticket.release()


def _body(runtime: Runtime, rid: str, policy: Any, item: Scored, spans: list[tuple[int, int]],
          include_prompt: bool) -> dict[str, Any]:
    reports = [r for r in item.reports if include_prompt or r.scope == "response"]
    fired: dict[str, int] = {}
    would: list[str] = []
    for r in item.reports:
        for rule in r.fired:
            fired[rule] = fired.get(rule, 0) + 1
    at_end = {rule.id for rule in policy.rules if rule.at_end}
    for a in item.alerts:  # an end-of-response verdict fires once, after the last position
        if a.rule_id in at_end:
            fired[a.rule_id] = 1
    for a in item.alerts:
        if a.action not in ("alert",) and a.action not in would:
            would.append(a.action)
    return {
        "object": "saeguard.score", "id": f"score-{rid}", "request_id": rid, "model": runtime.model_id,
        "policy": {"name": policy.name, "version": policy.version, "mode": policy.mode},
        "interventions": MONITOR_ONLY,
        "prompt_tokens": item.prompt_tokens,
        "response_spans": [list(s) for s in spans],
        "probes": list(runtime.backend.guard.probes.names),
        "tokens": [r.to_json() for r in reports],
        "rules_fired": [{"rule_id": k, "positions": v} for k, v in fired.items()],
        "policy_would": would,
        "alerts": [a.to_json_dict() for a in item.alerts],
    }
