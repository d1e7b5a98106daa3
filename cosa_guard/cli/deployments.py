"""`cosa-guard deployments check`: verify a deployments file the way the server will load it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Work with a deployments file (YAML: deployment id -> signed bundle, trusted keys, floor, routes).

  cosa-guard deployments check deployments.yaml

`check` verifies every deployment's bundle against its trusted keys, min_signers, floor, pin and
expiry, exactly as `cosa-guard serve` does at start-up, and prints each deployment's config hash
and signers. Exit 1 when any deployment would not load, with the reason per deployment.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deployments",
        help="check a deployments file: every bundle verifies, every deployment would load",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="verify every deployment in FILE", description="Verify every deployment in FILE."
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the deployments file (deployments.yaml)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from cosa_guard.deployments import check_file

    loaded, failures = check_file(args.file)
    for deployment_id, deployment in sorted(loaded.items()):
        config = deployment.config
        print(
            f"{deployment_id}: ok  {config.id} v{config.version} {deployment.config_hash}  "
            f"signers {', '.join(deployment.signers)}  api keys {len(deployment.spec.api_keys)}"
        )
    for deployment_id, why in sorted(failures.items()):
        print(f"{deployment_id}: FAILED  {why}", file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} deployment(s) would not load; fix and check again", file=sys.stderr)
        return 1
    if not loaded:
        print(f"{args.file}: no deployments", file=sys.stderr)
        return 1
    return 0
