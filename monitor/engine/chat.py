"""Render chat messages to prompt token ids with the model's chat template."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

ROLES = ("system", "user", "assistant")


class ChatFormatError(ValueError):
    """Malformed chat messages (the HTTP layer maps this to a 400/422)."""


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Check roles and contents; return plain ``{"role", "content"}`` dicts."""
    if not messages:
        raise ChatFormatError("messages must be a non-empty list")
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ChatFormatError(f"messages[{i}] must be an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ChatFormatError(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {role!r}")
        if not isinstance(content, str):
            raise ChatFormatError(f"messages[{i}].content must be a string")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800" in JSON): the tokenizer raises TypeError
            raise ChatFormatError(f"messages[{i}].content is not valid Unicode: lone surrogate "
                                  f"{content[exc.start]!r} at character {exc.start}") from None
        out.append({"role": role, "content": content})
    return out


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> list[int]:
    """Token ids of ``messages`` in the tokenizer's chat template.

    SmolLM2's template adds its default system prompt when none is given. A tokenizer
    without a chat template (e.g. ``hf:gpt2``) gets a plain ``Role: content`` rendering.

    Message contents are tokenised as literal text: a user who types ``<|im_end|>`` or
    ``<|im_start|>system`` gets those characters, never the special tokens, so nobody can
    forge a system or assistant turn from inside a message (the template's own markers
    stay special). When a content holds the text of an added/special token, the template
    is rendered with a placeholder for each content and the pieces are tokenised apart
    (contents with ``split_special_tokens=True``); otherwise the whole rendering is
    tokenised in one piece, as before (a content that starts with whitespace would merge
    differently across a piece boundary, so the split is used only when needed).
    """
    msgs = validate_messages(messages)
    if not any(_has_marker(tokenizer, m["content"]) for m in msgs):
        return _tokens(tokenizer, _template(tokenizer, msgs, add_generation_prompt), literal=False)
    marks = [f"\ue000saeguard-content-{i}\ue001" for i in range(len(msgs))]
    placeholders = [{"role": m["role"], "content": mark} for m, mark in zip(msgs, marks, strict=True)]
    text = _template(tokenizer, placeholders, add_generation_prompt)
    ids: list[int] = []
    pos = 0
    for m, mark in zip(msgs, marks, strict=True):
        at = text.find(mark, pos)
        if at < 0:  # a template that rewrites contents: no literal guarantee possible
            raise ChatFormatError("the chat template does not keep message contents verbatim")
        ids += _tokens(tokenizer, text[pos:at], literal=False)
        ids += _tokens(tokenizer, m["content"], literal=True)
        pos = at + len(mark)
    ids += _tokens(tokenizer, text[pos:], literal=False)
    return ids


def _template(tokenizer: Any, msgs: list[dict[str, str]], add_generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt))
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs)
    return text + ("Assistant:" if add_generation_prompt else "")


def _has_marker(tokenizer: Any, content: str) -> bool:
    """Does ``content`` contain the text of a token the tokenizer would match whole
    (special or added tokens such as ``<|im_start|>``)?"""
    markers = getattr(tokenizer, "_saeguard_markers", None)
    if markers is None:
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        markers = tuple({str(getattr(t, "content", t)) for t in decoder.values()} |
                        {str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or [])})
        markers = tuple(m for m in markers if m)
        with contextlib.suppress(AttributeError):
            tokenizer._saeguard_markers = markers
    return any(m in content for m in markers)


def _tokens(tokenizer: Any, text: str, literal: bool) -> list[int]:
    if not text:
        return []
    kw = {"split_special_tokens": True} if literal else {}
    return list(tokenizer(text, add_special_tokens=False, **kw)["input_ids"])
