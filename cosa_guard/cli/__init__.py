"""`cosa-guard`: the command line.

Each sub-command lives in its own module in this package and exposes
`register(subparsers) -> None`, which adds a parser whose `func(args) -> int` runs it. Other
distributions add commands through the `cosa_guard.cli` entry-point group (the training
package adds `train`). Heavy imports happen inside the handlers, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from cosa_guard.errors import CosaGuardError

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


def _missing(hint: str) -> int:
    print(f"error: {hint}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CosaGuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
