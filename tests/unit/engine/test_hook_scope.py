"""The one hook scope (monitor.engine.hooks.hook_scope): hooks in TransformerLens' style,
installed for the body and removed in ``finally``, also when the forward raised; the tap
and run_with_hooks go through it."""

from __future__ import annotations

import pytest
import torch

from monitor.engine.hooks import capture, hook_scope, run_with_hooks
from monitor.engine.tap import Tap
from tests.toymodel import toy_model

HOOK = "blocks.1.hook_resid_post"


def _n_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_are_removed_even_when_the_forward_raises() -> None:
    model = toy_model()
    tokens = torch.tensor([[3, 4, 5]])

    def boom(x: torch.Tensor, hook: object = None) -> None:
        raise RuntimeError("hook exploded")

    with pytest.raises(RuntimeError, match="hook exploded"), hook_scope(model, [(HOOK, boom)]):
        assert _n_hooks(model) == 1
        model(tokens)
    assert _n_hooks(model) == 0


def test_an_unknown_hook_name_installs_nothing() -> None:
    model = toy_model()
    ok = ("blocks.0.hook_resid_post", lambda x, hook=None: None)
    with pytest.raises(ValueError, match="unknown hook point 'blocks.9.hook_resid_post'"), \
            hook_scope(model, [ok, ("blocks.9.hook_resid_post", lambda x, hook=None: None)]):
        pass
    assert _n_hooks(model) == 0


def test_run_with_hooks_matches_transformer_lens_and_capture_sees_the_change() -> None:
    model = toy_model()
    tokens = torch.tensor([[3, 4, 5, 6]])

    def double(x: torch.Tensor, hook: object = None) -> torch.Tensor:
        return 2 * x

    ours = run_with_hooks(model, tokens, fwd_hooks=[(HOOK, double)])
    theirs = model.run_with_hooks(tokens, fwd_hooks=[(HOOK, double)])
    assert torch.equal(ours, theirs) and not torch.equal(ours, model(tokens))
    with capture(model, {"resid": HOOK}) as seen:
        run_with_hooks(model, tokens, fwd_hooks=[(HOOK, double)])
    assert seen["resid"].shape == (1, 4, 8)
    assert _n_hooks(model) == 0


def test_tap_goes_through_the_scope() -> None:
    model = toy_model()
    with Tap(model, HOOK, lambda x, call: None) as tap:
        assert tap.attached and _n_hooks(model) == 1
    assert not tap.attached and _n_hooks(model) == 0
