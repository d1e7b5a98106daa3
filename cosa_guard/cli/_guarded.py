"""What `serve` and `chat` share: pick the deployments file (the demo when none is given) and open a guard."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosa_guard.deployments import DeploymentRegistry
    from cosa_guard.served import ServedLedger

# Backends whose loaded model is shared process-wide: loading one here warms the guard's.
_SHARED_LOCAL_KINDS = ("transformers", "onnx")


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


def prepare_models(registry: DeploymentRegistry) -> None:
    """Load the local models the deployments name before serving (progress bars), not on the first request.

    transformers and onnx backends share one loaded model per folder and settings in the process,
    so the copy loaded here is the one the guard's own backends find.
    """
    from cosa_guard.backends.factory import build_backend

    seen: set[str] = set()
    for deployment in (registry.get(i) for i in registry.ids()):
        for spec in (deployment.spec.routes.primary, deployment.spec.routes.fallback):
            if spec is None or spec.kind not in _SHARED_LOCAL_KINDS:
                continue
            key = spec.model_dump_json()
            if key in seen:
                continue
            seen.add(key)
            load = getattr(build_backend(spec, deployment.base_dir), "load", None)
            if load is not None:
                asyncio.run(load())


def open_guard(path: Path, ledger: ServedLedger | None = None) -> Any:
    """A Guard over `path`, with the embedded model ready; `ledger`: see `DeploymentRegistry.load`."""
    from cosa_guard.guard import Guard

    guard = Guard.from_file(path, ledger=ledger)
    prepare_models(guard.registry)
    return guard
