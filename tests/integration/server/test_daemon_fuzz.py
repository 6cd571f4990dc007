"""A few hundred of the HTTP fuzzer's generated requests (ops/bench/fuzz.py: valid and
hostile bodies, broken JSON, odd headers and auth, mutated policy files reloaded over
HTTP, every endpoint) against the daemon
in-process with the real model: none is answered with a 5xx or a non-JSON error, every
stream ends with ``[DONE]``, ``/healthz`` answers after each, and afterwards (a third of
the streams were abandoned mid-way) nothing is left in flight. The full run (10,000
cases against ``saeguard serve``) is ``ops/bench/fuzz.py``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from ops.bench.fuzz import Case, cases, healthy, in_flight, send_case
from tests.integration.server.conftest import AUTH, TOKEN, policy_text

pytestmark = [pytest.mark.slow, pytest.mark.redis]

N_CASES = 300
#: the in-process daemon's cap is 64 tokens; the generator asks for 1-2 (or is refused)
MODEL_ID = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def client(daemon):
    daemon.set_policy(policy_text("empty"))
    with httpx.Client(base_url=daemon.base, timeout=120) as c:
        yield c


@seed(20261129)
@settings(max_examples=N_CASES, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
          suppress_health_check=list(HealthCheck))
@given(case=cases(TOKEN, MODEL_ID))
def test_generated_requests_get_no_server_error_and_the_daemon_stays_up(daemon, client, case: Case):
    outcome = send_case(client, case, policy_path=daemon.policy_path)
    assert not outcome.problems, (case.describe(), outcome.status, outcome.problems)
    assert healthy(client), case.describe()


def test_nothing_is_left_in_flight_after_the_fuzz(client):
    # abandoned streams and refused requests must all have released their admission
    assert in_flight(client, AUTH) == 0
    ok = client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "default", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2, "temperature": 0})
    assert ok.status_code == 200 and ok.json()["choices"][0]["finish_reason"] in ("length", "stop")


N_BATCHES = 15
BATCH = 8


@seed(20261130)
@settings(max_examples=N_BATCHES, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(batch=st.lists(cases(TOKEN, MODEL_ID), min_size=BATCH, max_size=BATCH))
def test_generated_requests_sent_concurrently_get_no_server_error(daemon, batch: list[Case]):
    """Eight at a time from eight clients: refusals, aborted streams, scoring, policy reloads
    and chats overlap inside the batching worker; none gets a server error."""
    def one(case: Case) -> tuple[Case, Any]:
        with httpx.Client(base_url=daemon.base, timeout=120) as c:
            return case, send_case(c, case, policy_path=daemon.policy_path)

    with ThreadPoolExecutor(max_workers=BATCH) as pool:
        results = list(pool.map(one, batch))
    for case, outcome in results:
        assert not outcome.problems, (case.describe(), outcome.status, outcome.problems)
    with httpx.Client(base_url=daemon.base, timeout=30) as c:
        assert healthy(c)


def test_nothing_is_left_in_flight_after_the_concurrent_fuzz(client):
    assert in_flight(client, AUTH) == 0
