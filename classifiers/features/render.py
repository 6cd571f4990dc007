"""Chat transcript -> token ids, and the span of the assistant's content tokens.

The probe reads the tokens of the final assistant turn's *content*: not the
``<|im_start|>assistant\\n`` header before it, not the closing ``<|im_end|>`` after it.
That is also what the run-time guard scores in a response (it skips special tokens).

The text is rendered with the tokenizer's chat template exactly as the daemon renders a
conversation (SmolLM2's template adds its default system prompt when none is given), and
tokenised in one piece. The span is found from the token ids of the prefix (every message
before the assistant turn, plus the generation prompt ``<|im_start|>assistant\\n``). When
those are not a prefix of the full ids (an answer starting with whitespace merges with the
header's newline), the prompt and the answer are tokenised separately, as in generation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class SpanError(ValueError):
    """The assistant content span could not be located reliably."""


@dataclass(frozen=True)
class Rendered:
    """One transcript in token form."""

    ids: tuple[int, ...]
    """Token ids of the whole chat (system, user, assistant turn with its ``<|im_end|>``)."""
    start: int
    """First assistant content token (inclusive)."""
    end: int
    """One past the last assistant content token (the closing ``<|im_end|>`` is at ``end``)."""
    prefix_len: int
    """Tokens before the content (equals ``start``): shared by transcripts with one prompt."""

    @property
    def n_content(self) -> int:
        """Number of assistant content tokens."""
        return self.end - self.start


def _template_text(tokenizer: Any, messages: Sequence[Mapping[str, str]], gen: bool) -> str:
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen))
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs)
    return text + ("Assistant:" if gen else "")


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def render(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], end_token_id: int | None = None
) -> Rendered:
    """Render ``messages`` (last one the assistant's) and locate its content tokens.

    ``end_token_id`` is the turn-closing token (``<|im_end|>``); by default the
    tokenizer's id for ``"<|im_end|>"`` when it has one, else the EOS id.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise SpanError("the last message must be the assistant's")
    full_text = _template_text(tokenizer, messages, gen=False)
    prefix_text = _template_text(tokenizer, messages[:-1], gen=True)
    if not full_text.startswith(prefix_text):
        raise SpanError("the chat template's prefix is not a prefix of the full rendering")
    ids = _ids(tokenizer, full_text)
    prefix = _ids(tokenizer, prefix_text)
    if ids[: len(prefix)] != prefix:
        # The content's first characters merged with the header's newline (content starting
        # with whitespace). Tokenise as a generation would: the prompt, then the answer.
        ids = prefix + _ids(tokenizer, full_text[len(prefix_text):])
    if end_token_id is None:
        end_token_id = _end_id(tokenizer)
    try:
        end = ids.index(end_token_id, len(prefix))
    except ValueError:
        end = len(ids)
        while end > len(prefix) and ids[end - 1] in _special_ids(tokenizer):
            end -= 1
    if end <= len(prefix):
        raise SpanError("the assistant turn has no content tokens")
    return Rendered(ids=tuple(ids), start=len(prefix), end=end, prefix_len=len(prefix))


def _end_id(tokenizer: Any) -> int:
    vocab_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    unk = getattr(tokenizer, "unk_token_id", None)
    if isinstance(vocab_id, int) and vocab_id != unk:
        return vocab_id
    return int(tokenizer.eos_token_id)


def _special_ids(tokenizer: Any) -> frozenset[int]:
    return frozenset(int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []))
