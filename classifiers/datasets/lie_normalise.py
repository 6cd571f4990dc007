"""Put an honest short answer and a full-sentence lie into one sentence template.

LLM-LieDetector pairs a short honest answer ("Iraq") with an LLM-written lie sentence
("The country of the 2020 ... airstrike is Canada."). A probe trained on them as-is
learns "short string vs sentence". Here we find the lie's answer span and build the honest
sentence by substituting the honest answer into it, so both members of a pair are the same
sentence except for the answer. Per source family:

- question answering (WikiData, Questions1000, Sciq): span = last run of lie words absent
  from the question (function words and morphological variants count as present);
- translation (Tatoeba*): span = the last quoted segment; an unquoted lie is a bare
  translation and the honest translation is used bare as well;
- verdict (Commonsense2, Anthropic awareness): both reduced to the verdict word
  ("True." / "False.", "Yes." / "No."); the lie's restatement is dropped because its
  negation cannot be written for the honest side;
- mathematics: the first number of the lie is replaced by the honest number.

:func:`normalise_pair` returns None when no reliable span exists (the pair is dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERDICT_SOURCES = frozenset(
    {"Commonsense2", "AnthropicAwarenessArchitecture", "AnthropicAwarenessNNArchitecture"}
)
TRANSLATION_SOURCES = frozenset({"TatoebaFreToEng", "TatoebaEngToFre"})
MATH_SOURCES = frozenset({"MathematicalProblems"})
QA_SOURCES = frozenset({"WikiData", "Questions1000", "Sciq"})

_FUNCTION_WORDS_TEXT = """a an the is are was were be been being of in on at to by for with from as and or that
    this these those it its which who whom what where when how why do does did has have had
    can could will would should may might must not no yes called known answer question term
    process type kind located found belongs belong belonged made part there their his her
    they he she i my your you we our us than then so such also into about over under between
    passed away died worked works work plays played play professional player players studies
    studied born lives lived live speaks spoke spoken written originally native speaker
    citizen citizenship headquartered developed founded created based named country language
    official original sport"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
# Words allowed inside an answer span between two content words ("Bosnia and Herzegovina").
_BRIDGE = frozenset(
    {"of", "and", "de", "the", "-", "&", "y", "la", "du", "del", "von", "van", "da"}
)
_TOKEN = re.compile(r"\S+")
_TRAILING_PUNCT = ".,!?;:"
_ARTICLE_BEFORE = re.compile(r"\b(the|a|an)\s+$", re.IGNORECASE)
_VERDICT = re.compile(r"\W*(true|false|yes|no)\b", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# Anthropic awareness questions sometimes end with an empty "Options:" header.
_DANGLING_HEADER = re.compile(r"\n\n\s*[\w ]{0,30}:\s*$")

#: A span longer than this many words (and twice the honest answer) is not trusted.
MAX_SPAN_WORDS = 4


@dataclass(frozen=True)
class NormalisedPair:
    """The two assistant sentences of one lie/honest pair."""

    honest: str
    """Sentence asserting the honest answer."""
    lie: str
    """Sentence asserting the lie."""
    family: str
    """qa | translation | verdict | math."""


def clean_question(question: str) -> str:
    """Question text without a dangling answer-options header; whitespace collapsed."""
    return " ".join(_DANGLING_HEADER.sub("", question).split())


def _norm(token: str) -> str:
    token = token.lower().strip(".,!?;:\"'()[]")
    return token[:-2] if token.endswith("'s") else token


def _present(word: str, question_words: set[str]) -> bool:
    if not word or word in _FUNCTION_WORDS or word in question_words:
        return True
    return len(word) >= 5 and any(len(q) >= 5 and q[:5] == word[:5] for q in question_words)


def find_answer_span(question: str, lie: str) -> tuple[int, int] | None:
    """Character span of the answer inside ``lie`` (QA family), or None."""
    question_words = {_norm(t) for t in _TOKEN.findall(question)} - {""}
    tokens = [(m.start(), m.end(), _norm(m.group())) for m in _TOKEN.finditer(lie)]
    new = [not _present(word, question_words) for _, _, word in tokens]
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        if not new[i]:
            i += 1
            continue
        j = i
        while True:  # extend over bridge words that sit between two new words
            k = j + 1
            while k < len(tokens) and not new[k] and tokens[k][2] in _BRIDGE:
                k += 1
            if k < len(tokens) and new[k]:
                j = k
                continue
            break
        runs.append((i, j))
        i = j + 1
    if not runs:
        return None
    first, last = runs[-1]
    start, end = tokens[first][0], tokens[last][1]
    while end > start and lie[end - 1] in _TRAILING_PUNCT:
        end -= 1
    while start < end and lie[start] in "\"'(":
        start += 1
    return (start, end) if end > start else None


def _substitute(lie: str, start: int, end: int, answer: str) -> str:
    """Replace ``lie[start:end]`` by ``answer``, fixing a preceding article."""
    prefix = lie[:start]
    article = _ARTICLE_BEFORE.search(prefix)
    if article and re.match(r"(the|a|an)\s", answer, re.IGNORECASE):
        prefix = prefix[: article.start()]  # "the" + "the nucleus" -> "the nucleus"
    elif article and answer[:1].isupper():
        prefix = prefix[: article.start()]  # "is the United States" -> "is Belgium"
    elif article and article.group(1).lower() in ("a", "an"):
        fixed = "an" if answer[:1].lower() in "aeiou" else "a"
        if article.group(1)[0].isupper():
            fixed = fixed.capitalize()
        prefix = prefix[: article.start()] + fixed + " "
    suffix = lie[end:]
    last_word = answer.split()[-1]
    repeated = re.match(rf"\s+{re.escape(last_word)}\b", suffix, re.IGNORECASE)
    if repeated:  # "strip mining" + " mining." -> "strip mining."
        suffix = suffix[repeated.end() :]
    if not prefix.strip():
        answer = answer[:1].upper() + answer[1:]
    return prefix + answer + suffix


def _last_quote(lie: str) -> tuple[int, int] | None:
    """Span of the content of the last quoted segment ("..." preferred, then '...')."""
    doubles = [m.span(1) for m in re.finditer(r'"([^"]+)"', lie)]
    if doubles:
        return doubles[-1]
    end = lie.rstrip(" .").rfind("'")
    if end <= 0:
        return None
    opens = [m.end() for m in re.finditer(r"(?:^|[\s:])'", lie[:end])]
    return (opens[-1], end) if opens else None


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text[-1:] in ".!?'\"" else text + "."


def normalise_pair(source: str, question: str, honest: str, lie: str) -> NormalisedPair | None:
    """One-sentence honest and lie assertions in the same form, or None (drop the pair)."""
    honest, lie = " ".join(honest.split()), " ".join(lie.split())
    if not honest or not lie:
        return None
    if source in VERDICT_SOURCES:
        match = _VERDICT.match(lie)
        if match is None or honest.lower() not in ("true", "false", "yes", "no"):
            return None
        lie_verdict = match.group(1).lower()
        if lie_verdict == honest.lower():
            return None
        return NormalisedPair(honest.capitalize() + ".", lie_verdict.capitalize() + ".", "verdict")
    if source in MATH_SOURCES:
        number = _NUMBER.search(lie)
        if number is None:
            return None
        honest_sentence = lie[: number.start()] + honest + lie[number.end() :]
        return NormalisedPair(_sentence(honest_sentence), _sentence(lie), "math")
    if source in TRANSLATION_SOURCES:
        quote = _last_quote(lie)
        if quote is None:
            return NormalisedPair(_sentence(honest), _sentence(lie), "translation")
        start, end = quote
        return NormalisedPair(
            _sentence(lie[:start] + honest + lie[end:]), _sentence(lie), "translation"
        )
    if source in QA_SOURCES:
        span = find_answer_span(question, lie)
        if span is None:
            return None
        start, end = span
        words = len(lie[start:end].split())
        if words > max(MAX_SPAN_WORDS, 2 * len(honest.split())):
            return None
        return NormalisedPair(_sentence(_substitute(lie, start, end, honest)), _sentence(lie), "qa")
    return None
