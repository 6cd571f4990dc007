"""The ``saeguard`` console script.

Each runtime subcommand lives in its own module that exposes ``register(subparsers)``;
the module is listed in :data:`COMMAND_MODULES`. Packages above the runtime add theirs
through the ``saeguard.commands`` entry-point group (:data:`PLUGIN_GROUP`): each entry
point names a ``register(subparsers)`` callable (``classifiers.cli:register`` adds the
training, evaluation and interpretability commands). The runtime never imports them by
name, so ``monitor`` does not depend on ``classifiers``. Nothing heavy is imported until a
subcommand runs, so ``saeguard --help`` stays fast. Logging is configured here, once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any

#: Modules that contribute subcommands, in help order. Each defines
#: ``register(subparsers: argparse._SubParsersAction) -> None`` and sets
#: ``func=...`` on its parser(s) through ``set_defaults``; ``func(args) -> int``.
COMMAND_MODULES: tuple[str, ...] = (
    "monitor.cli.generate",
    "monitor.cli.models",
    "monitor.cli.policy",
    "monitor.cli.alerts",
    "monitor.cli.serve",
    "monitor.cli.chat",
)

PLUGIN_GROUP = "saeguard.commands"
"""Entry-point group of ``register(subparsers)`` callables from packages above the runtime."""


class CliError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saeguard",
        description="Safety monitoring and guardrail sidecar for LLM chat services.",
    )
    parser.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log line format (default: console; the daemon uses json)",
    )
    parser.add_argument("--log-level", default="info", help="debug|info|warning|error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for register in _registrars():
        before = set(subparsers.choices)
        register(subparsers)
        added = set(subparsers.choices) - before
        dup = added & seen
        if dup:
            raise RuntimeError(f"subcommand registered twice: {sorted(dup)}")
        seen |= added
    return parser


def _registrars() -> Iterator[Callable[[Any], None]]:
    """The runtime's own ``register`` functions, then the plugins' (entry-point name order)."""
    for name in COMMAND_MODULES:
        yield importlib.import_module(name).register
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        yield ep.load()


def main(argv: Sequence[str] | None = None) -> int:
    from monitor.logging_setup import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(fmt=args.log_format, level=args.log_level)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"saeguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
