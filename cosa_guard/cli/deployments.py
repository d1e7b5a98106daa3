"""`cosa-guard deployments check|schema`: verify a deployments file the way the server will load it,
or print the JSON Schema of its shape."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Work with a deployments file (YAML: deployment id -> signed bundle, trusted keys, floor, routes).

  cosa-guard deployments check deployments.yaml
  cosa-guard deployments schema > deployments.schema.json

`check` verifies every deployment's bundle against its trusted keys, min_signers, floor, pin and
expiry, exactly as `cosa-guard serve` does at start-up, and prints each deployment's config hash
and signers. Exit 1 when any deployment would not load, with the reason per deployment.

`schema` prints the JSON Schema of the file's shape, generated from the models the server
validates it with (docs/deployments.schema.json is a copy): editors use it to complete and
check a deployments.yaml as you type. Signatures, keys and bundles are checked by `check` only.
"""

SCHEMA_ID = "https://github.com/cosa-guard/cosa_guard/blob/main/docs/deployments.schema.json"


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
    schema = actions.add_parser(
        "schema",
        help="print the JSON Schema of a deployments file",
        description="Print the JSON Schema of a deployments file, generated from the server's models.",
    )
    schema.set_defaults(func=run_schema)


def schema_text() -> str:
    """The JSON Schema of `DeploymentsFile`, as `schema` prints it (ending with a newline)."""
    from cosa_guard.settings import DeploymentsFile

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **DeploymentsFile.model_json_schema(),
        "title": "cosa-guard deployments file",
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def run_schema(_args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


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
