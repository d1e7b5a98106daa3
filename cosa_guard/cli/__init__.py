"""`cosa-guard`: the command line.

Each sub-command lives in its own module in this package and exposes
`register(subparsers) -> None`, which adds a parser whose `func(args) -> int` runs it. Other
distributions add commands through the `cosa_guard.cli` entry-point group (the training
package adds `train`). Heavy imports happen inside the handlers, so `--help` stays fast.

Logging is configured here for every command (`--log-level`, `--log-format`, or
COSA_GUARD_LOG_LEVEL / COSA_GUARD_LOG_FORMAT): WARNING by default, and the level a command
asks for with `set_defaults(command_log_level=...)` (`serve`: INFO) when none is given.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version

from cosa_guard.errors import CosaGuardError
from cosa_guard.logs import FORMATS, LEVELS, configure_logging

LOG_LEVEL_ENV = "COSA_GUARD_LOG_LEVEL"
LOG_FORMAT_ENV = "COSA_GUARD_LOG_FORMAT"

_OPTIONAL_COMMANDS = {
    "train": "the CoSAlign training recipe is a separate distribution: pip install cosa-guard-training",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosa-guard",
        description=(
            "Guardrail middleware for LLM apps with signed, per-deployment safety configs (CoSA). "
            "Run `cosa-guard serve` for a guarded chat service on the embedded model, or "
            "`cosa-guard COMMAND --help` for any command below."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_logging_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    for ep in entry_points(group="cosa_guard.cli"):
        ep.load()(sub)
    for name, hint in _OPTIONAL_COMMANDS.items():
        if name not in sub.choices:
            p = sub.add_parser(name, help=f"(not installed) {hint}", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=lambda _a, hint=hint: _missing(hint))
    return parser


def add_logging_options(parser: argparse.ArgumentParser, *, command: bool = False) -> None:
    """`--log-level` and `--log-format`; on a command (`command=True`) they default to the global ones."""
    level_default = argparse.SUPPRESS if command else os.environ.get(LOG_LEVEL_ENV)
    format_default = argparse.SUPPRESS if command else os.environ.get(LOG_FORMAT_ENV, "text")
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=level_default,
        help=f"log level (env {LOG_LEVEL_ENV}; default: warning, info for serve)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=format_default,
        help=f"log lines as text or one JSON object each (env {LOG_FORMAT_ENV}; default: text)",
    )


def _version() -> str:
    try:
        return version("cosa-guard")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _missing(hint: str) -> int:
    print(f"error: {hint}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.log_level = args.log_level or getattr(args, "command_log_level", "warning")
    try:
        configure_logging(args.log_level, args.log_format)
    except ValueError as exc:  # a bad COSA_GUARD_LOG_* value: argparse checks only what is typed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CosaGuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
