"""Malformed policy files made by mutating valid ones: the generator shared by
``tests/unit/policy/test_policy_mutants.py`` (through ``PolicyStore.reload``) and the HTTP
fuzzer ``ops/bench/fuzz.py`` (through ``POST /v1/policy/reload`` on the live daemon).

:func:`mutate` applies 1-3 seeded edits to a policy's text: delete a line, give a value
the wrong type, misspell a key, an out-of-range number, an unknown probe, an unknown
action, break the indentation, duplicate a rule id or a line, an uncalibrated fpr, an
unclosed quote/bracket, a tab, an emptied value, truncate the file, an unknown enum
value, or append hostile bytes (:data:`HOSTILE`). :data:`ISSUE` matches one rejection
line ``FILE:LINE: field: message``.
"""

from __future__ import annotations

import random
import re

# `key: value` in block or flow style (value up to a comma, brace, bracket or comment)
_KV = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*):[ ]+(?P<value>[^,{}\[\]#\n]*[^,{}\[\]#\n ])")
_KEY = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?=[ \n]|$)")
WRONG_TYPES = ["[1, 2]", "{a: 1}", "'text'", "123", "true", "null", "-5", "1e9", ".nan", "~", "''", "[]", "{}"]
OUT_OF_RANGE = ["-1", "0", "1.5", "2", "99999999", "1e-9", "5000", "-0.5", "1e400", "0x10"]


def _content_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]


def edit_kv(lines: list[str], rnd: random.Random, values: list[str],
             keys: tuple[str, ...] | None = None) -> str | None:
    spots = [(i, m) for i in _content_lines(lines) for m in _KV.finditer(lines[i])
             if keys is None or m["key"] in keys]
    if not spots:
        return None
    i, m = rnd.choice(spots)
    lines[i] = lines[i][: m.start("value")] + rnd.choice(values) + lines[i][m.end("value"):]
    return m["key"]


def _misspell(word: str, rnd: random.Random) -> str:
    k = rnd.randrange(len(word))
    how = rnd.choice(["drop", "double", "swap", "upper", "suffix"])
    if how == "drop" and len(word) > 1:
        return word[:k] + word[k + 1:]
    if how == "swap" and k + 1 < len(word):
        return word[:k] + word[k + 1] + word[k] + word[k + 2:]
    if how == "upper":
        return word.upper()
    if how == "suffix":
        return word + "s"
    return word[: k + 1] + word[k:]


def mutate(text: str, rnd: random.Random) -> tuple[str, list[str]]:
    """``text`` with 1-3 random mutations; also the names of the mutations applied."""
    lines = text.splitlines()
    applied: list[str] = []
    for _ in range(rnd.choice([1, 1, 1, 2, 3])):
        content = _content_lines(lines)
        if not content:
            break
        op = rnd.choice(["delete", "wrong_type", "misspell", "out_of_range", "unknown_probe", "unknown_action",
                         "indent", "duplicate_id", "duplicate_line", "fpr", "unclosed", "tab", "empty_value",
                         "truncate", "enum", "hostile"])
        if op == "delete":
            del lines[rnd.choice(content)]
        elif op == "wrong_type":
            edit_kv(lines, rnd, WRONG_TYPES)
        elif op == "misspell":
            spots = [(i, m) for i in content for m in _KEY.finditer(lines[i])]
            if spots:
                i, m = rnd.choice(spots)
                lines[i] = lines[i][: m.start("key")] + _misspell(m["key"], rnd) + lines[i][m.end("key"):]
        elif op == "out_of_range":
            edit_kv(lines, rnd, OUT_OF_RANGE, ("threshold", "fpr", "tokens", "min_consecutive", "cooldown_tokens",
                                                  "top_k", "value"))
        elif op == "unknown_probe":
            edit_kv(lines, rnd, ["decepton", "honesty", "Deception", "'deception '", "unsafe-code"], ("probe",))
        elif op == "unknown_action":
            spots = [i for i in content if re.search(r"- (alert|clamp|stop|steer):", lines[i])]
            if spots:
                i = rnd.choice(spots)
                lines[i] = re.sub(r"- (alert|clamp|stop|steer):",
                                  lambda _m: "- " + rnd.choice(["alrt", "explode", "block", "log", "Stop"]) + ":",
                                  lines[i], count=1)
        elif op == "indent":
            i = rnd.choice(content)
            lines[i] = (" " * rnd.choice([1, 2, 3, 4]) + lines[i]) if rnd.random() < 0.5 else lines[i][
                rnd.choice([1, 2]):]
        elif op == "duplicate_id":
            ids = [m.group(1) for i in content for m in re.finditer(r"- id: (\S+)", lines[i])]
            spots = [i for i in content if re.search(r"- id: \S+", lines[i])]
            if len(ids) > 1:
                i = rnd.choice(spots)
                lines[i] = re.sub(r"- id: \S+", "- id: " + rnd.choice(ids), lines[i])
        elif op == "duplicate_line":
            i = rnd.choice(content)
            lines.insert(i + 1, lines[i])
        elif op == "fpr":
            edit_kv(lines, rnd, ["0.02", "0.5", "0.001", "0.011"], ("fpr",))
        elif op == "unclosed":
            i = rnd.choice(content)
            lines[i] = lines[i] + rnd.choice(['"', "'", "{", "[", " {a: 1"])
        elif op == "tab":
            i = rnd.choice(content)
            lines[i] = "\t" + lines[i].lstrip(" ")
        elif op == "empty_value":
            edit_kv(lines, rnd, [""])
        elif op == "truncate":
            lines = lines[: rnd.choice(content)]
        elif op == "hostile":
            i = rnd.choice(content)
            lines[i] = lines[i] + rnd.choice(list(HOSTILE.values()))[1]
        elif op == "enum":
            edit_kv(lines, rnd, ["enforced", "SHADOW", "fail_safe", "median", "everywhere", "urgent", "forever"],
                     ("mode", "on_monitor_error", "reduce", "scope", "severity", "tokens"))
        applied.append(op)
    return "\n".join(lines) + "\n", applied


_BOMB = "".join(f" &a{k} [" + ",".join([f"*a{k - 1}" if k else "1"] * 9) + "]" for k in range(9))
#: name -> (a line that replaces a policy's ``description:`` line, a suffix the "hostile"
#: mutation appends to a line)
HOSTILE: dict[str, tuple[str, str]] = {
    "nul": ("name: def\x00ault", "\x00"),
    "control_char": ("name: def\x07ault", "\x1b[31m"),
    "huge_int": ("description: 1" + "0" * 5000, " 1" + "0" * 5000),
    "deep_flow": ("description: " + "[" * 3000 + "]" * 3000, " " + "[" * 3000 + "]" * 3000),
    "alias_bomb": ("x: [" + _BOMB.replace(" &", "&", 1).replace("] &", "], &") + "]", ""),
    "python_tag": ("name: !!python/object/apply:os.system [\"true\"]", " !!python/name:os.system"),
    "int_key": ("5: x", " {5: x}"),
    "list_key": ("? [a]\n: x", " {[a]: x}"),
}


ISSUE = re.compile(r"^(?P<file>.+):(?P<line>[0-9]+): (?P<field>[^:]+): (?P<message>.+)$", re.S)
