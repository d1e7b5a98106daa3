"""`cosa-guard verify`: check a signed bundle the way a deployment will before serving it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cosa_guard.cli._review import parse_floor
from cosa_guard.errors import (
    BundleError,
    ExpiredConfigError,
    FloorViolationError,
    InsufficientSignersError,
    MalformedBundleError,
    PinMismatchError,
    TamperedBundleError,
    UnknownKeyError,
)
from cosa_guard.signing import Keyring, key_id, load_bundle, load_public_key, verify_bundle

DESCRIPTION = """\
Verify a signed bundle against the reviewer keys you trust.

  cosa-guard verify game-studio.json --trust keys/alice.pub --trust keys/bob.pub --min-signers 2

Exit 0 and print the config hash and its signers when the bundle is valid. Otherwise exit 1 with
one line `rejected (REASON): why, and what to do`, REASON being one of: malformed (not a bundle),
tampered (the config or review record changed after signing), unknown signer (no signature by a
trusted key), too few signers (fewer distinct trusted signers than --min-signers, or none at
all), expired (the config's expires_at has passed), floor (it allows a --floor category) or pin
mismatch (its hash differs from --pin).
"""

# The order matters only for readability; each rejection has exactly one class.
REASONS: tuple[tuple[type[BundleError], str], ...] = (
    (MalformedBundleError, "malformed"),
    (TamperedBundleError, "tampered"),
    (UnknownKeyError, "unknown signer"),
    (InsufficientSignersError, "too few signers"),
    (ExpiredConfigError, "expired"),
    (FloorViolationError, "floor"),
    (PinMismatchError, "pin mismatch"),
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a bundle's signatures, signers, expiry and floor; print its config hash",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", type=Path, metavar="BUNDLE.json", help="the signed bundle")
    parser.add_argument(
        "--trust",
        action="append",
        type=Path,
        required=True,
        metavar="PUBFILE",
        help="a trusted reviewer's public key (KEYFILE.pub from keygen); repeatable",
    )
    parser.add_argument(
        "--min-signers",
        type=int,
        default=1,
        metavar="N",
        help="distinct trusted signers required (default 1)",
    )
    parser.add_argument(
        "--floor",
        action="append",
        default=[],
        metavar="CATEGORY",
        help="a category the config must not allow; repeatable or comma-separated",
    )
    parser.add_argument("--pin", metavar="HASH", help="the exact config hash to accept (sha256:...)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.min_signers < 1:
        print("error: --min-signers must be at least 1", file=sys.stderr)
        return 2
    trusted = {str(path): load_public_key(path) for path in args.trust}
    key_files = {key_id(key): path for path, key in trusted.items()}
    floor = parse_floor(args.floor)
    try:
        verified = verify_bundle(
            load_bundle(args.bundle),
            Keyring(trusted.values()),
            min_signers=args.min_signers,
            pin=args.pin,
            floor=floor,
        )
    except BundleError as exc:
        print(f"{args.bundle}: rejected ({reason(exc)}): {exc}", file=sys.stderr)
        return 1
    config = verified.config
    print(f"{args.bundle}: ok")
    print(f"config:   {config.id} v{config.version} {verified.config_hash}")
    print(f"signers:  {', '.join(f'{kid} ({key_files[kid]})' for kid in verified.signers)}")
    review = verified.review
    print(f"reviewed: by {review.reviewer} at {review.reviewed_at.isoformat()}" + _note(review.note))
    if config.expires_at is not None:
        print(f"expires:  {config.expires_at.isoformat()}")
    return 0


def reason(exc: BundleError) -> str:
    """The short name of a rejection, e.g. `tampered`; `invalid` for a BundleError with no finer class."""
    return next((name for cls, name in REASONS if isinstance(exc, cls)), "invalid")


def _note(note: str) -> str:
    return f"; note: {note}" if note else ""
