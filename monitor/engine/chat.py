"""Render chat messages to prompt token ids with the model's chat template."""

from __future__ import annotations

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
    """
    msgs = validate_messages(messages)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt)
    else:
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs)
        if add_generation_prompt:
            text += "Assistant:"
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
