"""ops.research.probes.prompt_fpr reads prompt scores exactly like a policy window."""

import numpy as np

from ops.research.probes.prompt_fpr import fires


def test_fires_like_a_policy_window() -> None:
    s = np.asarray([0.1, 0.9, 0.1, 0.1])
    assert fires(s, 1, "max", 0.9)
    assert not fires(s, 2, "mean", 0.6)  # (0.1 + 0.9) / 2 = 0.5
    assert fires(s, 2, "max", 0.9)
    assert fires(np.asarray([0.8]), 16, "mean", 0.8)  # partial window at the start
    assert not fires(np.asarray([]), 1, "max", 0.0)  # no scored prompt token
