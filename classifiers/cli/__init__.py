"""The ``saeguard`` subcommands of the learned parts: SAE training and features
(:mod:`.sae`), probe caching/training/evaluation (:mod:`.probes`) and interpretability
searches and studies (:mod:`.interp`).

The runtime's CLI (:mod:`monitor.cli`) never imports this package: it finds
:func:`register` through the ``saeguard.commands`` entry-point group declared in
pyproject.toml, the way pytest finds ``pytest11`` plugins. So the arrows point one way:
``classifiers`` depends on ``monitor``, and an install without the entry point still has a
working daemon CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Modules that contribute subcommands, in help order (``interp`` adds to the ``features``
#: group that ``sae`` creates). Each defines ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "classifiers.cli.sae",
    "classifiers.cli.probes",
    "classifiers.cli.interp",
)


def register(subparsers: Any) -> None:
    """Add the classifiers' subcommands to the ``saeguard`` parser (entry point)."""
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
