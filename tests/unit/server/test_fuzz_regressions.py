"""Requests the HTTP fuzzer (ops/bench/fuzz.py) found answered with a 500, kept as
regressions on the toy app: each now gets a 4xx that says what was wrong."""

from __future__ import annotations

import pytest

from tests.unit.server.test_app_toy import AUTH, app_env, call  # noqa: F401  (app_env is a fixture)

TRANSCRIPT = [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "ab"}]


@pytest.mark.parametrize("rid", ["caf\u00e9\u2713", "\U000fa4b6", "a\nb", "tab\there", " lead"])
def test_score_request_id_that_cannot_be_a_header_is_a_422(app_env, rid):  # noqa: F811
    app, _, writer = app_env
    r = call(app, "POST", "/v1/score", json={"messages": TRANSCRIPT, "request_id": rid}, headers=AUTH)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["param"] == "request_id" and "printable ASCII" in err["message"]
    assert writer.sent == []  # refused before scoring: nothing published under that id


@pytest.mark.parametrize("rid", ["conv 1/2#3", "8d3e-11:a.b_c", ""])
def test_score_printable_request_id_is_echoed(app_env, rid):  # noqa: F811
    app, _, _ = app_env
    r = call(app, "POST", "/v1/score", json={"messages": TRANSCRIPT, "request_id": rid}, headers=AUTH)
    assert r.status_code == 200, r.text
    if rid:
        assert r.headers["x-request-id"] == rid and r.json()["request_id"] == rid
    else:
        assert r.json()["request_id"] == r.headers["x-request-id"] != ""
