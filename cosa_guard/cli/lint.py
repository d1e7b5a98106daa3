"""`cosa-guard lint`: check a safety config before anyone signs it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from cosa_guard.cli._review import (
    add_context_arguments,
    context_from_args,
    lint_source,
    print_issues,
    print_rules,
    read_source,
)
from cosa_guard.config import SafetyConfig
from cosa_guard.errors import ConfigError
from cosa_guard.rules import config_rules

DESCRIPTION = """\
Check a safety config (YAML) and report every problem as `FILE: field: reason`.

Errors (exit 1): bad YAML, missing or unknown fields, an unknown risk category, `other` or a
floor category in `allow`, empty or oversize text, an expired `expires_at`, and policy text that
looks like a prompt injection (chat-template tokens, role markers, "ignore previous
instructions", fake config blocks). Warnings are printed but do not fail: the reviewer decides.
Exit 0 when clean; the config's hash is printed so the deployment can pin it.

The config's numbered rules are printed for review: its `rules` when it has them, else the
rules derived from its text (polarity, categories, exceptions). Lint warns when a rule maps to
no category or contradicts `allow`. `--write-rules` appends the derived rules to the file as a
`rules:` block, for the reviewer to edit before `cosa-guard sign`.

  cosa-guard lint game-studio.yaml
  cosa-guard lint game-studio.yaml --write-rules
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
    parser.add_argument(
        "--write-rules",
        action="store_true",
        help="append the rules derived from the text to CONFIG.yaml as a `rules:` block to review and edit",
    )
    add_context_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = read_source(args.config)
    report = lint_source(source, context_from_args(args))
    print_issues(args.config, report, sys.stdout)
    if not report.ok:
        print(f"{args.config}: {len(report.errors)} error(s); fix them and run lint again")
        return 1
    config = report.config
    assert config is not None  # a report without errors always carries the parsed config
    print_rules(args.config, config, sys.stdout)
    if args.write_rules:
        config = _write_rules(args.config, source, config)
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    print(f"{args.config}: ok{warned} ({config.id} v{config.version} {config.hash})")
    return 0


def _write_rules(path: Path, source: str, config: SafetyConfig) -> SafetyConfig:
    """Append the derived rules as a YAML block, so the author's comments and layout stay as they are."""
    if config.rules:
        raise ConfigError(f"{path} already has rules; edit them in the file (or delete them to derive again)")
    rules = [r.model_dump(mode="json", exclude_defaults=True) for r in config_rules(config).rules]
    block = yaml.safe_dump(
        {"rules": rules}, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None
    )
    header = (
        "\n# Rules derived from `text` by `cosa-guard lint --write-rules`: review and edit before signing.\n"
    )
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(("" if source.endswith("\n") else "\n") + header + block)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"{path}: wrote {len(rules)} rule(s) into the file; review them, then sign (the hash covers them)")
    return SafetyConfig.load(path)
