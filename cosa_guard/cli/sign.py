"""`cosa-guard sign`: review and sign a config into a bundle, or add a reviewer's signature to one."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cosa_guard.cli._review import (
    ReviewContext,
    add_context_arguments,
    context_from_args,
    lint_source,
    print_issues,
    print_rules,
    read_source,
)
from cosa_guard.config import SafetyConfig
from cosa_guard.errors import BundleError
from cosa_guard.review import LintReport
from cosa_guard.rules import config_rules
from cosa_guard.signing import Bundle, add_signature, key_id, load_private_key, parse_bundle, sign_config

DESCRIPTION = """\
Sign a safety config as its reviewer, or co-sign a bundle another reviewer signed.

  cosa-guard sign game-studio.yaml --key keys/alice --reviewer alice --note "ticket 42" -o game-studio.json
      lints the config (refusing, exit 1, on any lint error) and writes a bundle: the canonical
      config, a review record (reviewer, time, lint summary, note) and alice's signature.
      The config is signed with its numbered rules, which are printed: its `rules` when it has
      them, else the rules derived from its text (the same ones `cosa-guard lint` shows), so
      the runtime enforces what was reviewed. --no-rules signs a config without rules as it is;
      its rules are then derived at load and flagged unreviewed in every decision.

  cosa-guard sign game-studio.json --key keys/bob --reviewer bob
      adds bob's signature to the bundle, in place (or to -o). The config and review record are
      signed as they are; bob's note cannot be added without invalidating alice's signature.

Check the result with `cosa-guard verify BUNDLE.json --trust keys/alice.pub --trust keys/bob.pub`.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sign",
        help="lint and sign a config into a bundle, or add a signature to an existing bundle",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", type=Path, metavar="CONFIG.yaml|BUNDLE.json", help="a config to sign or a bundle to co-sign"
    )
    parser.add_argument("--key", type=Path, required=True, metavar="KEYFILE", help="your private key")
    parser.add_argument(
        "--reviewer", metavar="NAME", help="who reviewed it (required for a config; the signer's name)"
    )
    parser.add_argument("--note", default="", help="why the config was approved (first reviewer only)")
    parser.add_argument(
        "--no-rules",
        action="store_true",
        help="do not add the rules derived from the text to a config that has none (they stay unreviewed)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="BUNDLE.json",
        help="where to write the bundle (required for a config; a co-signed bundle defaults to in place)",
    )
    add_context_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = read_source(args.source)
    context = context_from_args(args)
    if _looks_like_bundle(text):
        if args.note:
            print(
                "error: --note belongs to the first reviewer's signed review record; a co-signer cannot add "
                "one without invalidating the existing signatures (leave --note out)",
                file=sys.stderr,
            )
            return 2
        bundle = parse_bundle(text)
        config = bundle.config()
        if _review(args.source, config.model_dump(mode="json"), context) is None:
            return 1
        return _cosign(args, bundle, config, load_private_key(args.key))

    if not args.reviewer or args.out is None:
        print("error: signing a config needs --reviewer NAME and -o BUNDLE.json", file=sys.stderr)
        return 2
    report = _review(args.source, text, context)
    if report is None:
        return 1
    return _sign_new(args, report, load_private_key(args.key))


def _save(bundle: Bundle, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        bundle.save(path)
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror}; choose another -o path") from exc


def _looks_like_bundle(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and "format" in data


def _review(path: Path, source: str | Mapping[str, Any], context: ReviewContext) -> LintReport | None:
    """The lint report when the config may be signed; None (after saying why) when it may not."""
    report = lint_source(source, context)
    print_issues(path, report, sys.stderr)
    if report.ok:
        return report
    print(
        f"error: refusing to sign {path}: {len(report.errors)} lint error(s); fix them and run "
        "`cosa-guard lint` again",
        file=sys.stderr,
    )
    return None


def _sign_new(args: argparse.Namespace, report: LintReport, key: Ed25519PrivateKey) -> int:
    config = report.config
    assert config is not None  # a report without errors always carries the parsed config
    print_rules(args.source, config, sys.stdout)
    if config.rules:
        how = "with the rules written in the config"
    elif args.no_rules:
        how = "without rules (--no-rules): they are derived at load and flagged unreviewed"
    else:
        config = config.model_copy(update={"rules": config_rules(config).rules})
        how = (
            "with the rules above, derived from its text (`lint --write-rules` puts them in the file to edit)"
        )
    bundle = sign_config(config, key, reviewer=args.reviewer, note=args.note, lint_report=report)
    _save(bundle, args.out)
    print(f"signed {config.id} v{config.version} {bundle.config().hash}")
    print(f"  {how}")
    print(f"  by key {key_id(key.public_key())} ({args.reviewer}) -> {args.out}")
    print(f"next: a second reviewer runs `cosa-guard sign {args.out} --key THEIR_KEY --reviewer NAME`;")
    print(f"      check it with `cosa-guard verify {args.out} --trust {args.key}.pub`")
    return 0


def _cosign(args: argparse.Namespace, bundle: Bundle, config: SafetyConfig, key: Ed25519PrivateKey) -> int:
    review = bundle.review()
    out = args.out or args.source
    signed = add_signature(bundle, key, signer=args.reviewer or "")
    _save(signed, out)
    allow = ", ".join(config.allow) or "none (free-form)"
    print(f"co-signed {config.id} v{config.version} {config.hash}")
    print(f"  reviewed by {review.reviewer} at {review.reviewed_at.isoformat()}; allows: {allow}")
    print(
        f"  by key {key_id(key.public_key())} ({args.reviewer or 'unnamed'}) -> {out}; "
        f"{len(signed.signatures)} signature(s)"
    )
    return 0
