"""One scoped way to put hooks on a model's hook points: installed on entry, removed in
``finally`` (also when the forward pass or the body raised), in TransformerLens' own
``hooks()`` style: ``(hook_name, fn)`` pairs where ``fn(activation, hook) -> activation |
None`` (None leaves it unchanged).

Every hook in saeguard goes through :func:`hook_scope`: the activation tap
(:class:`monitor.engine.tap.Tap`), the caching and evaluation passes of classifiers, and the
full-sequence forwards of the interpretability studies (which used ``run_with_hooks``).
Torch forward hooks are used, so the hooks fire in TransformerLens' forward and in
:class:`monitor.engine.fastpath.FastForward` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from torch import Tensor

K = TypeVar("K")

HookFn = Callable[..., "Tensor | None"]
"""``fn(activation, hook=hook_point) -> replacement or None`` (TransformerLens' signature)."""


def hook_point(model: Any, name: str) -> Any:
    """The ``HookPoint`` called ``name``; an unknown name is a one-line ValueError."""
    hook_dict = getattr(model, "hook_dict", {})
    if name not in hook_dict:
        examples = [n for n in hook_dict if n.endswith("hook_resid_post")][:3]
        raise ValueError(f"unknown hook point {name!r}; e.g. {', '.join(examples)}")
    return hook_dict[name]


@contextmanager
def hook_scope(model: Any, fwd_hooks: Sequence[tuple[str, HookFn]]) -> Iterator[None]:
    """Install ``fwd_hooks`` on ``model`` for the body of the ``with``; always removed."""
    points = [(hook_point(model, name), fn) for name, fn in fwd_hooks]  # all names checked first
    handles = []
    try:
        for point, fn in points:
            def full(module: Any, _inputs: Any, output: Tensor, fn: HookFn = fn) -> Tensor | None:
                return fn(output, hook=module)

            handles.append(point.register_forward_hook(full))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model: Any, names: Mapping[K, str]) -> Iterator[dict[K, Tensor]]:
    """Record the activation (detached) at each hook point of ``names`` in the yielded dict,
    under the same key, for every forward run in the body; the hooks go on exit."""
    out: dict[K, Tensor] = {}

    def grab(key: K) -> HookFn:
        def fn(x: Tensor, hook: Any = None) -> None:  # noqa: ARG001 - hook_scope signature
            out[key] = x.detach()

        return fn

    with hook_scope(model, [(name, grab(key)) for key, name in names.items()]):
        yield out


def run_with_hooks(model: Any, *args: Any, fwd_hooks: Sequence[tuple[str, HookFn]] = (), **kwargs: Any) -> Any:
    """``model(*args, **kwargs)`` with ``fwd_hooks`` in a :func:`hook_scope` (TransformerLens'
    ``run_with_hooks``, through the one hook scope)."""
    with hook_scope(model, fwd_hooks):
        return model(*args, **kwargs)
