"""The guard: SAE encode + probe scores + policy decisions + interventions, run inside the
model's forward pass through a residual tap."""

from monitor.guard.guard import Guard, GuardSession, PositionReport
from monitor.guard.interventions import ablate_features, clamp_features, steer
from monitor.guard.probebank import ProbeBank

__all__ = ["Guard", "GuardSession", "PositionReport", "ProbeBank", "ablate_features", "clamp_features", "steer"]
