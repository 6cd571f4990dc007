"""One rule for which positions count (monitor.guard.positions.monitorable), and the places
that used to spell it out themselves agreeing with it: the guard, interventions, the
interpretability encoder (which lacked the sink-like rule) and SAE caching/evaluation."""

from __future__ import annotations

import pytest
import torch

from monitor.guard.positions import OUTLIER_NORM_FACTOR, monitorable, sink_like
from tests.unit.interp import toys

SPECIALS = (0, 1)


def _resid(n: int, sink_at: int | None = None) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(n, 8)
    if sink_at is not None:
        x[sink_at] *= 500.0  # a sink-like row (like a long run of spaces)
    return x


def test_position_zero_specials_padding_and_the_content_start_do_not_count() -> None:
    ids = torch.tensor([[5, 6, 1, 8, 9], [5, 0, 7, 2, 2]])
    mask = monitorable(ids, special_ids=SPECIALS, lengths=torch.tensor([5, 3])).mask
    assert mask.tolist() == [[False, True, False, True, True], [False, False, True, False, False]]
    assert monitorable(ids[:1], from_pos=3).mask.tolist() == [[False, False, False, True, True]]
    # a later chunk or decode step: its first column is not position 0
    assert monitorable(ids[:1, :2], start_pos=7).mask.tolist() == [[True, True]]
    assert monitorable(ids[:1, :2], skip_sink=False).mask.tolist() == [[True, True]]


def test_sink_like_rows_do_not_count_and_the_reference_carries_over() -> None:
    x = _resid(6, sink_at=3)
    first = monitorable(torch.tensor([5, 6, 7, 8, 9, 10]), resid=x)
    assert first.mask.tolist() == [False, True, True, False, True, True]
    kept = x[1:].norm(dim=-1)  # the median over the rows the token rules keep
    assert first.ref_norm == pytest.approx(float(kept.median()))
    # a one-row decode step is judged against the prompt's reference, not its own median
    big = x[3:4] * 1.0
    assert monitorable(torch.tensor([9]), start_pos=6, resid=big).mask.tolist() == [True]
    assert monitorable(torch.tensor([9]), start_pos=6, resid=big, ref_norm=first.ref_norm).mask.tolist() == [False]
    assert sink_like(x).mask.tolist() == [False, False, False, True, False, False]
    assert OUTLIER_NORM_FACTOR == 10.0


def test_interp_encoder_now_skips_sink_like_rows_like_the_guard() -> None:
    from classifiers.interp.runtime import encode_prompt

    model = toys.model()
    sae = toys.toy_sae(model)

    def blow_up(x: torch.Tensor, hook: object = None) -> torch.Tensor:
        x = x.clone()
        x[:, 4] *= 1000.0
        return x

    enc = encode_prompt(model, sae, toys.HOOK, toys.PROMPT, toys.SPECIALS, before=[(toys.HOOK, blow_up)])
    assert enc.keep.tolist() == [False, True, True, True, False, True, True]  # position 0 and the sink-like row
    assert not bool(enc.z[4].any())


def test_interventions_leave_sink_like_rows_alone() -> None:
    from monitor.guard.interventions import FeatureIntervention

    model = toys.model()
    sae = toys.toy_sae(model)
    x = _resid(6, sink_at=3)[None]
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    out = FeatureIntervention.steer_feature(toys.BASE, 5.0).apply(x, sae, ids)
    assert out is not None
    changed = [not torch.equal(out[0, i], x[0, i]) for i in range(6)]
    assert changed == [False, True, True, False, True, True]
    touch_all = FeatureIntervention.steer_feature(toys.BASE, 5.0, skip_first=False).apply(x, sae, ids)
    assert touch_all is not None and not torch.equal(touch_all[0, 3], x[0, 3])
