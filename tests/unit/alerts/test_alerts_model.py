"""The alert record's stream fields and JSON forms round-trip."""

from __future__ import annotations

import json
import math

import pytest

from monitor.alerts.model import Alert, FeatureRef, format_ts, parse_ts


def full_alert() -> Alert:
    return Alert(
        alert_id="a1",
        kind="rule",
        ts=1732240000.123456,
        request_id="r",
        rule_id="x",
        policy_name="p",
        policy_version="ab" * 32,
        mode="shadow",
        concept="deception",
        probe="deception",
        score=0.8125,
        threshold=0.8,
        token_index=17,
        token=" é\n",
        action="would_clamp",
        severity="high",
        features=(FeatureRef(12, 3.25, "lying"), FeatureRef(40, 0.5)),
        model="smol",
        hook="blocks.15",
        excerpt="... trust me",
        detail="clamp 12,40",
    )


def test_stream_fields_are_strings_and_round_trip():
    alert = full_alert()
    fields = alert.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["ts"] == "2024-11-22T01:46:40.123456Z"
    assert json.loads(fields["features"]) == [
        {"id": 12, "activation": 3.25, "label": "lying"},
        {"id": 40, "activation": 0.5, "label": ""},
    ]
    raw = {k.encode(): v.encode() for k, v in fields.items()}  # what redis-py returns
    back = Alert.from_fields(raw)
    assert back.ts == pytest.approx(alert.ts, abs=1e-6)
    assert back == Alert(**{**alert.__dict__, "ts": back.ts})


def test_empty_optional_fields():
    alert = Alert(alert_id="e", kind="policy_error", ts=0.0, detail="bad")
    fields = alert.to_fields()
    assert fields["score"] == fields["token_index"] == fields["threshold"] == ""
    assert Alert.from_fields(fields) == alert


def test_json_round_trip_is_exact():
    alert = full_alert()
    assert Alert.from_json_dict(json.loads(json.dumps(alert.to_json_dict()))) == alert


def test_ts_helpers():
    assert parse_ts(format_ts(0.5)) == 0.5
    assert math.isnan(parse_ts(""))
