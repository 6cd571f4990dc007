"""The alert record: what the policy engine produces and subscribers read.

In Redis each alert is one stream entry whose fields are all strings
(:meth:`Alert.to_fields`); on disk (the spool) and in ``saeguard alerts tail`` it is a
JSON object (:meth:`Alert.to_json_dict`). ``alert_id`` is unique per alert and is what
subscribers de-duplicate on.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

AlertKind = Literal["rule", "policy_error"]


def new_alert_id() -> str:
    """A fresh unique id (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class FeatureRef:
    """A SAE feature offered as evidence for an alert."""

    id: int
    """SAE feature id."""
    activation: float
    """Its activation at the alert's position."""
    label: str = ""
    """Human label from the pack's features.json, if any."""


@dataclass(frozen=True)
class Alert:
    """One alert. Fields that do not apply to a kind are empty strings / None."""

    alert_id: str
    """Unique id (de-duplication key for at-least-once delivery)."""
    kind: AlertKind
    """``rule`` (a rule fired) or ``policy_error`` (a policy reload was rejected)."""
    ts: float
    """Wall-clock time the alert was raised, seconds since the epoch (UTC)."""
    request_id: str = ""
    rule_id: str = ""
    policy_name: str = ""
    policy_version: str = ""
    """sha256 hex of the policy file in force."""
    mode: str = ""
    """``enforce`` or ``shadow``."""
    concept: str = ""
    """Concept of the probe that triggered the rule (e.g. ``deception``)."""
    probe: str = ""
    """Probe name that triggered the rule."""
    score: float | None = None
    """The pooled score compared with the threshold (probability in [0, 1])."""
    threshold: float | None = None
    token_index: int | None = None
    """Position of the token in the request (prompt positions first)."""
    token: str = ""
    action: str = ""
    """``alert``, ``clamp``, ``steer``, ``stop``; in shadow mode ``would_clamp``,
    ``would_steer``, ``would_stop``; ``policy_error`` for rejected reloads."""
    severity: str = ""
    features: tuple[FeatureRef, ...] = ()
    model: str = ""
    hook: str = ""
    excerpt: str = ""
    """The last ~200 characters of text the monitor had seen for the request."""
    detail: str = ""
    """Free text: what the action did, or the validation errors of a rejected policy."""

    # -- JSON (spool, CLI) -------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ts`` stays a float; ``features`` a list of objects)."""
        out = asdict(self)
        out["features"] = [asdict(f) for f in self.features]
        return out

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Inverse of :meth:`to_json_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["features"] = tuple(FeatureRef(**f) for f in data.get("features") or ())
        return cls(**kwargs)

    # -- Redis stream fields ------------------------------------------------------------
    def to_fields(self) -> dict[str, str]:
        """Stream entry fields, all strings. ``ts`` is ISO 8601 UTC; None is ``""``;
        ``features`` is a JSON list of ``{id, activation, label}``."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ts":
                out["ts"] = format_ts(value)
            elif f.name == "features":
                out["features"] = json.dumps([asdict(x) for x in value], separators=(",", ":"))
            elif value is None:
                out[f.name] = ""
            elif isinstance(value, float):
                out[f.name] = repr(value)
            else:
                out[f.name] = str(value)
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> Alert:
        """Parse stream entry fields (str or bytes keys/values)."""
        data = {_text(k): _text(v) for k, v in raw.items()}
        feats = json.loads(data.get("features") or "[]")
        return cls(
            alert_id=data.get("alert_id", ""),
            kind="policy_error" if data.get("kind") == "policy_error" else "rule",
            ts=parse_ts(data.get("ts", "")),
            request_id=data.get("request_id", ""),
            rule_id=data.get("rule_id", ""),
            policy_name=data.get("policy_name", ""),
            policy_version=data.get("policy_version", ""),
            mode=data.get("mode", ""),
            concept=data.get("concept", ""),
            probe=data.get("probe", ""),
            score=_opt_float(data.get("score", "")),
            threshold=_opt_float(data.get("threshold", "")),
            token_index=int(data["token_index"]) if data.get("token_index") else None,
            token=data.get("token", ""),
            action=data.get("action", ""),
            severity=data.get("severity", ""),
            features=tuple(FeatureRef(**f) for f in feats),
            model=data.get("model", ""),
            hook=data.get("hook", ""),
            excerpt=data.get("excerpt", ""),
            detail=data.get("detail", ""),
        )


def format_ts(ts: float) -> str:
    """Epoch seconds -> ``2025-01-31T12:00:00.123456Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> float:
    """Inverse of :func:`format_ts` (microsecond precision); ``""`` -> nan."""
    if not text:
        return math.nan
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _opt_float(text: str) -> float | None:
    return float(text) if text else None
