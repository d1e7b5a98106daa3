"""`cosa-guard lint`: check a safety config before anyone signs it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cosa_guard.cli._review import (
    add_context_arguments,
    context_from_args,
    lint_source,
    print_issues,
    read_source,
)

DESCRIPTION = """\
Check a safety config (YAML) and report every problem as `FILE: field: reason`.

Errors (exit 1): bad YAML, missing or unknown fields, an unknown risk category, `other` or a
floor category in `allow`, empty or oversize text, an expired `expires_at`, and policy text that
looks like a prompt injection (chat-template tokens, role markers, "ignore previous
instructions", fake config blocks). Warnings are printed but do not fail: the reviewer decides.
Exit 0 when clean; the config's hash is printed so the deployment can pin it.

  cosa-guard lint game-studio.yaml
  cosa-guard lint game-studio.yaml --floor sexual --judge-kind category
  cosa-guard lint game-studio.yaml --deployments deployments.yaml --deployment game-studio
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check a safety config; exit 1 on errors, each naming the field and the reason",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the safety config to check")
    add_context_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = lint_source(read_source(args.config), context_from_args(args))
    print_issues(args.config, report, sys.stdout)
    if not report.ok:
        print(f"{args.config}: {len(report.errors)} error(s); fix them and run lint again")
        return 1
    assert report.config is not None  # a report without errors always carries the parsed config
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    print(f"{args.config}: ok{warned} ({report.config.id} v{report.config.version} {report.config.hash})")
    return 0
