"""The fault benchmark's scenario at small size (issue 8): 5 streaming requests that raise
alerts while redis-server is killed (``kill -9``) and restarted mid-run and the policy is
edited and reloaded; under fail_open nothing fails, no alert is lost or written twice,
and every response carries the policy version it started with.

The scenario is ``ops/bench/faults.py``'s :func:`run` (one implementation for the bench
and the test). test_daemon_faults.py covers the single-request cases (fail_closed
refusal message, spool then replay, monitor errors); this one covers concurrency."""

from __future__ import annotations

import pytest

from ops.bench.faults import ALERTS_PER_REQUEST, Target, run
from tests.integration.server.conftest import TOKEN, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_redis_killed_and_restarted_under_load_loses_no_alert(loaded_model, guard_pack, redis_factory, tmp_path):
    server = redis_factory()
    with start_daemon(loaded_model, guard_pack, server.url, tmp_path) as d:
        target = Target(d.base, TOKEN, d.policy_path, "test:alerts", server)
        result = run(target, requests=5, concurrency=2, mode="fail_open", max_tokens=8, reload_every=0.3,
                     kill_at=0.2, restart_at=0.6, min_down_s=1.0, drain_timeout_s=60)
    assert result["spooled_peak"] > 0, result  # alerts really were raised while Redis was down
    assert result["failed"] == 0 and result["refused"] == 0, result
    assert result["alerts_per_request"] == {str(ALERTS_PER_REQUEST): 5}, result
    assert result["alerts_expected"] == 5 * ALERTS_PER_REQUEST, result
    assert result["lost"] == 0 and result["alerts_received"] == result["alerts_expected"], result
    assert result["alerts_duplicated"] == 0, result
    assert result["reloads"] > 0 and result["reload_errors"] == 0, result
    assert result["version_mismatches"] == 0, result
    assert result["drained"] and result["recovered"], result
