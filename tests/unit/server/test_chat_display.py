"""``saeguard chat``'s rendering of streamed chunks: text, markers, status line."""

import io

from monitor.cli.chat import Display


def chunk(content=None, finish=None, tokens=(), alerts=(), scope=None, errors=None):
    guard = {"policy_version": "v", "tokens": list(tokens), "alerts": list(alerts)}
    if scope:
        guard["scope"] = scope
    if errors:
        guard["monitor_errors"] = errors
    delta = {"content": content} if content is not None else {}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "saeguard": guard}


def rep(token, scores, actions=()):
    return {"scope": "response", "token": token, "scores": scores, "actions": list(actions), "fired": []}


def test_plain_display_marks_clamp_alert_stop_and_prints_status():
    out = io.StringIO()
    d = Display(out, live=False, color=False)
    d.begin()
    d.chunk(chunk("", scope="prompt", alerts=[{"rule_id": "p1"}]))
    d.chunk(chunk("Hello", tokens=[rep("Hello", {"deception": 0.1, "bias": 0.2})]))
    d.chunk(chunk(" world", tokens=[rep(" world", {"deception": 0.9, "bias": 0.1}, ["clamp:3=0"])],
                  alerts=[{"rule_id": "r1"}]))
    d.chunk(chunk(" again", tokens=[rep(" again", {"deception": 0.5, "bias": 0.1}, ["clamp:3=0"])]))
    d.chunk(chunk("[stopped]", finish="content_filter"))
    d.end("content_filter")
    text = out.getvalue()
    assert "[PROMPT ALERT p1]" in text
    assert text.count("[CLAMP]") == 1  # marked where the clamp starts, not on every clamped token
    assert "[ALERT r1]" in text and "[STOP] [stopped]" in text
    assert "Hello" in text and " world" in text
    assert "deception 0.50 (max 0.90)" in text and "bias 0.10 (max 0.20)" in text
    assert "\x1b" not in text


def test_live_display_pins_status_to_the_bottom_row():
    out = io.StringIO()
    d = Display(out, live=True, color=True)
    d.begin()
    d.chunk(chunk("Hi", tokens=[rep("Hi", {"deception": 0.3})]))
    d.close()
    text = out.getvalue()
    assert "\x1b[1;" in text and "r" in text  # scroll region set
    assert "deception 0.30" in text and text.endswith("\x1b[r")  # region reset at the end
