"""Request bodies of ``/v1/chat/completions`` and ``/v1/score``.

Field names and ranges follow OpenAI's chat API so the official client works unchanged.
Unknown top-level keys are accepted and ignored (clients add ``user``, ``metadata`` ...),
but parameters that would change the output and that this server cannot honour
(``n`` != 1, tools, logprobs, stop sequences, penalties, non-text response formats) are
rejected with 422 rather than silently ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["text"] = Field(description="Only text parts are supported.")
    text: str = Field(description="The text.")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="Who said it (`developer` is treated as `system`).")
    content: str | list[TextPart] = Field(description="Text, or a list of text parts.")
    name: str | None = Field(None, description="Accepted and ignored.")

    def as_plain(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    include_usage: bool = Field(False, description="Send a final chunk with token usage.")


_PRINTABLE_ID = re.compile(r"^[!-~](?:[ -~]*[!-~])?$")

_UNSUPPORTED_TRUTHY = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs",
                       "stop", "logit_bias", "audio", "modalities", "prediction")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(description="The served model's id (see GET /v1/models) or `default`.")
    messages: list[Message] = Field(min_length=1, description="The conversation so far.")
    stream: bool = Field(False, description="Server-sent events when true.")
    stream_options: StreamOptions | None = Field(None, description="OpenAI stream options.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Alias of max_tokens.")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 = greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1,
                             description="Sampling seed (same seed, same tokens); a 64-bit integer.")
    n: int = Field(1, description="Must be 1.")
    frequency_penalty: float = Field(0.0, description="Must be 0 (not supported).")
    presence_penalty: float = Field(0.0, description="Must be 0 (not supported).")
    response_format: dict[str, Any] | None = Field(None, description="Only {'type': 'text'}.")

    @field_validator("n")
    @classmethod
    def _n(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _penalty(cls, v: float) -> float:
        if v != 0.0:
            raise ValueError("penalties are not supported (must be 0)")
        return v

    @field_validator("response_format")
    @classmethod
    def _fmt(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and v.get("type", "text") != "text":
            raise ValueError("only response_format {'type': 'text'} is supported")
        return v

    @model_validator(mode="after")
    def _unsupported(self) -> ChatCompletionRequest:
        extra = self.model_extra or {}
        for key in _UNSUPPORTED_TRUTHY:
            if extra.get(key):
                raise ValueError(f"'{key}' is not supported by this server")
        if self.max_tokens is not None and self.max_completion_tokens is not None \
                and self.max_tokens != self.max_completion_tokens:
            raise ValueError("max_tokens and max_completion_tokens disagree")
        return self

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="Optional; must name the served model if given.")
    messages: list[Message] = Field(min_length=1, description="The full conversation, assistant turns included.")
    request_id: str | None = Field(None, max_length=200, description="Id copied onto alerts and echoed in the "
                                   "x-request-id header (printable ASCII; default: generated).")
    include_prompt: bool = Field(True, description="Also return per-token scores of non-assistant positions.")

    @field_validator("request_id")
    @classmethod
    def _rid(cls, v: str | None) -> str | None:
        # it goes back in a response header: anything but printable ASCII (no control
        # characters, nothing outside latin-1) would fail there after the forward pass
        if v and not _PRINTABLE_ID.match(v):
            raise ValueError("expected at most 200 printable ASCII characters (letters, digits, punctuation, inner spaces)")
        return v
