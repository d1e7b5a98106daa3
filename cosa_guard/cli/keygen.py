"""`cosa-guard keygen`: a reviewer's Ed25519 signing key, or a deployment API key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Create a credential.

  cosa-guard keygen --out keys/alice     reviewer signing key: writes keys/alice (private,
                                         mode 0600) and keys/alice.pub, prints the key id
  cosa-guard keygen --api-key            a new API key for a deployment: prints the key (give
                                         it to the client) and its sha256 hash (put that in
                                         the deployment's api_keys in deployments.yaml)

The private key signs configs with `cosa-guard sign`; keep it to yourself. The .pub file goes
into the trusted_keys of every deployment that accepts your reviews.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="create a reviewer signing key (--out) or a deployment API key (--api-key)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--out", type=Path, metavar="KEYFILE", help="write a signing key to KEYFILE and KEYFILE.pub"
    )
    what.add_argument(
        "--api-key", action="store_true", help="print a new API key and the hash deployments.yaml stores"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.api_key:
        from cosa_guard.settings import hash_api_key, new_api_key

        api_key = new_api_key()
        print(f"api key:  {api_key}")
        print(f"sha256:   {hash_api_key(api_key)}")
        print("Give the key to the client; add the sha256 line to the deployment's api_keys.")
        return 0

    from cosa_guard.errors import BundleError
    from cosa_guard.signing import generate_key, key_id, write_keypair

    key = generate_key()
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        private, public = write_keypair(key, args.out)
    except OSError as exc:
        raise BundleError(f"cannot write {args.out}: {exc.strerror}; choose another --out path") from exc
    print(f"key id:   {key_id(key.public_key())}")
    print(f"private:  {private} (mode 0600; keep it secret, it signs configs)")
    print(f"public:   {public} (add it to trusted_keys of the deployments that trust this reviewer)")
    return 0
