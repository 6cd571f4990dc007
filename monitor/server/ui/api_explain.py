"""``POST /ui/api/explain``: a token's probe scores and the SAE features behind them.

The browser sends what it showed: the prompt messages and the response tokens up to the
clicked one (each token string is tokenised back to its id), or a scored transcript and
a position in it. The daemon rebuilds the token ids and explains the last position
(:mod:`monitor.server.ui.explain`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from monitor.engine.chat import ChatFormatError, render_chat
from monitor.server.auth import require_auth
from monitor.server.errors import ApiError
from monitor.server.schemas import Message
from monitor.server.ui.calljob import run_on_worker
from monitor.server.ui.explain import explain_position
from monitor.server.ui.state import feature_book, runtime_of

router = APIRouter(prefix="/ui/api", dependencies=[Depends(require_auth)])


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[Message] = Field(min_length=1, description="The prompt (chat) or the whole transcript.")
    transcript: bool = Field(False, description="True: `messages` is a finished transcript (as sent to "
                             "/v1/score), rendered without a generation prompt; False: a chat prompt.")
    tokens: list[str] = Field(default_factory=list, max_length=4096,
                              description="Chat: the response tokens up to and including the clicked one.")
    position: int | None = Field(None, ge=0, description="Explain this absolute position (default: the last).")
    k: int = Field(8, ge=1, le=32, description="Features to list per probe.")


@router.post("/explain")
async def explain(body: ExplainRequest, request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    engine = runtime.backend.engine
    tokenizer = engine.tokenizer
    messages = [m.as_plain() for m in body.messages]
    try:
        ids = render_chat(tokenizer, messages, add_generation_prompt=not body.transcript)
    except ChatFormatError as exc:
        raise ApiError(422, str(exc), param="messages") from None
    prompt_len = len(ids)
    exact = True
    for text in body.tokens:
        piece = tokenizer.encode(text, add_special_tokens=False)
        exact = exact and len(piece) == 1
        ids.extend(piece)
    if body.position is not None:
        if body.position >= len(ids):
            raise ApiError(422, f"position {body.position} is past the end ({len(ids)} tokens)", param="position")
        ids = ids[: body.position + 1]
    limit = min(runtime.settings.max_prompt_tokens, engine.n_ctx - 1)
    if len(ids) > limit:
        raise ApiError(413, f"{len(ids)} tokens; at most {limit} can be explained", code="context_length_exceeded")
    if len(ids) < 2:
        raise ApiError(422, "nothing to explain at position 0 (the attention sink is never scored)",
                       param="position")
    book = feature_book(request)
    result = await run_on_worker(runtime, lambda: explain_position(runtime.backend, ids, book.label, body.k),
                                 "explaining a token")
    return {"position": result.position, "token": result.token, "prompt_tokens": prompt_len,
            "exact_tokens": exact, "scores": result.scores, "probes": result.probes,
            "top_features": result.top_features, "hook": runtime.backend.guard.hook_name,
            "note": "recomputed without the request's interventions (clamps and steers are not replayed)"}
