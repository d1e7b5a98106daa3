"""What `serve`, `chat` and `eval` share: the deployments file to open (the demo when none is given)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Target:
    path: Path
    api_key: str | None = None  # known only for the demo: a real deployment's keys are stored as hashes
    demo_id: str | None = None


def add_deployments_option(parser: argparse.ArgumentParser, *, env: str | None = None) -> None:
    """`--deployments FILE`; with `env`, that environment variable gives the default."""
    parser.add_argument(
        "--deployments",
        type=Path,
        default=os.environ.get(env) if env else None,
        metavar="FILE",
        help=f"deployments.yaml ({f'env {env}; ' if env else ''}default: the bundled demo deployment, "
        "signed on this machine at first run)",
    )


def resolve(deployments: Path | None) -> Target:
    """The given deployments file, or the demo deployment (created and signed at first run)."""
    if deployments is not None:
        return Target(deployments)
    from cosa_guard.demo import ensure_demo_deployment

    demo = ensure_demo_deployment()
    print(demo.notice, file=sys.stderr)
    return Target(demo.deployments_path, demo.api_key, demo.deployment_id)
