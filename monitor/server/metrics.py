"""Prometheus metrics in a registry owned by the app (never the global default registry)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.alerts.model import Alert
from monitor.alerts.sink import SinkState

HOOK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("saeguard_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.tokens = Counter("saeguard_tokens", "Tokens processed", ["kind"], registry=r)
        self.alerts = Counter("saeguard_alerts", "Alerts raised by rule and action", ["rule", "action"],
                              registry=r)
        self.clamps = Counter("saeguard_clamped_positions", "Positions where features were clamped",
                              registry=r)
        self.stops = Counter("saeguard_policy_stops", "Responses stopped by a policy", registry=r)
        self.monitor_errors = Counter("saeguard_monitor_errors", "Monitor (tap) errors by policy outcome",
                                      ["outcome"], registry=r)
        self.hook_seconds = Histogram("saeguard_hook_seconds",
                                      "Guard time inside the forward hook per call (decode: per token)",
                                      ["phase"], buckets=HOOK_BUCKETS, registry=r)
        self.reloads = Counter("saeguard_policy_reloads", "Policy reload attempts by result", ["result"],
                               registry=r)
        self.reload_errors = Counter("saeguard_policy_reload_errors", "Rejected policy reloads", registry=r)
        self.alert_queue = Gauge("saeguard_alert_queue_depth", "Alerts in memory waiting for Redis",
                                 registry=r)
        self.alert_spooled = Gauge("saeguard_alert_spooled", "Alerts in the disk spool", registry=r)
        self.redis_connected = Gauge("saeguard_redis_connected", "1 if the last Redis write succeeded",
                                     registry=r)
        self.in_flight = Gauge("saeguard_in_flight_requests", "Requests being served", registry=r)
        self.batch_active = Gauge("saeguard_batch_active", "Chat requests in the decoding batch", registry=r)
        self.worker_queue = Gauge("saeguard_worker_queue_depth", "Requests waiting for the generation worker",
                                  registry=r)

    def count_alert(self, alert: Alert) -> None:
        self.alerts.labels(rule=alert.rule_id or alert.kind, action=alert.action).inc()

    def render(self, sink_state: SinkState | None, in_flight: int, worker_queue: int, batch_active: int = 0) -> bytes:
        if sink_state is not None:
            self.alert_queue.set(sink_state.queue_depth)
            self.alert_spooled.set(sink_state.spooled)
            self.redis_connected.set(1 if sink_state.connected else 0)
        self.in_flight.set(in_flight)
        self.worker_queue.set(worker_queue)
        self.batch_active.set(batch_active)
        return generate_latest(self.registry)


def counting_publisher(publish: Callable[[Alert], None], metrics: Metrics) -> Callable[[Alert], None]:
    """Wrap an alert publisher so every alert is also counted."""

    def wrapped(alert: Alert) -> None:
        metrics.count_alert(alert)
        publish(alert)

    return wrapped
