"""End to end without the model: a policy file in a PolicyStore, a request monitor fed
scores, alerts through the sink into a real Redis stream; a bad edit shows up as a
``policy_error`` entry while the old version keeps producing alerts."""

from __future__ import annotations

import pytest

from monitor.alerts.model import Alert
from monitor.alerts.redis_stream import RedisStreamWriter, make_redis_client
from monitor.alerts.sink import AlertSink
from monitor.alerts.spool import Spool
from monitor.policy import PolicyStore, RequestContext, policy_version
from tests.unit.policy.toys import PROBES, policy_yaml, toy_pack

pytestmark = pytest.mark.redis

POLICY = policy_yaml(
    """
    - id: unsafe
      when: {probe: unsafe_code, threshold: calibrated, fpr: 0.01}
      then:
        - alert: {severity: high}
        - clamp: {top_k: 3, tokens: 4}
    """,
    mode="shadow",
    name="shadowed",
)


def test_alerts_and_policy_errors_reach_the_stream(redis_server, tmp_path):
    writer = RedisStreamWriter(make_redis_client(redis_server.url), "saeguard:alerts")
    sink = AlertSink(writer, Spool(tmp_path / "spool"))
    sink.start()
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    store = PolicyStore(path, toy_pack(), on_alert=sink.publish)
    store.load()

    path.write_text(POLICY.replace("fpr: 0.01", "fpr: 0.5"))
    assert not store.reload().ok

    mon = store.current.new_request(
        "req-1", RequestContext(model="smollm2-135m-instruct", hook="blocks.15.hook_resid_post")
    )
    text = ["def ", "run(cmd):", " os.system(", "cmd)"]
    for i, token in enumerate(text):
        scores = {**dict.fromkeys(PROBES, 0.0), "unsafe_code": 0.9 if i == 2 else 0.1}
        result = mon.step(scores, i, token, "response")
        assert not result.clamps  # shadow mode
        for alert in result.alerts:
            sink.publish(alert)
    assert sink.close(10)

    with redis_server.client() as c:
        entries = [Alert.from_fields(f) for _id, f in c.xrange("saeguard:alerts")]
    error, alert, would = entries
    version = policy_version(POLICY.encode())
    assert error.kind == "policy_error" and error.policy_version == version
    assert "rules.0.when.fpr" in error.detail
    assert [alert.action, would.action] == ["alert", "would_clamp"]
    for a in (alert, would):
        assert (a.kind, a.policy_name, a.policy_version, a.mode) == (
            "rule",
            "shadowed",
            version,
            "shadow",
        )
        assert (a.request_id, a.rule_id, a.concept, a.token_index, a.token) == (
            "req-1",
            "unsafe",
            "unsafe_code",
            2,
            " os.system(",
        )
        assert a.score == 0.9 and a.threshold == 0.8
        assert a.excerpt == "def run(cmd): os.system("
        assert a.model == "smollm2-135m-instruct" and a.hook == "blocks.15.hook_resid_post"
