"""Shared pydantic base for every policy-file model.

``extra="forbid"`` makes a misspelt YAML key an error instead of a silently ignored
setting; ``frozen=True`` makes a validated policy immutable; ``strict=True`` rejects
quoted numbers (``threshold: "0.8"``) and booleans where numbers are expected, which
are almost always editing mistakes in a policy file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PolicyModel(BaseModel):
    """Base class of all policy-file models (forbid unknown keys, frozen, strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
