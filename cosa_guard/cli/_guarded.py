"""What `serve` and `chat` share: pick the deployments file (the demo when none is given) and open a guard."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosa_guard.deployments import DeploymentRegistry


@dataclass(frozen=True, slots=True)
class Target:
    path: Path
    api_key: str | None = None  # known only for the demo: a real deployment's keys are stored as hashes
    demo_id: str | None = None


def resolve(deployments: Path | None) -> Target:
    """The given deployments file, or the demo deployment (created and signed at first run)."""
    if deployments is not None:
        return Target(deployments)
    from cosa_guard.demo import ensure_demo_deployment

    demo = ensure_demo_deployment()
    print(demo.notice, file=sys.stderr)
    return Target(demo.deployments_path, demo.api_key, demo.deployment_id)


def prepare_models(registry: DeploymentRegistry) -> None:
    """Convert the embedded model before serving (progress bars on first run), not on the first request."""
    specs = (d.spec.routes for d in (registry.get(i) for i in registry.ids()))
    backends = [b for routes in specs for b in (routes.primary, routes.fallback) if b is not None]
    if any(b.kind == "transformers" and b.model == "embedded" for b in backends):
        from cosa_guard.embedded import embedded_model_dir

        embedded_model_dir(progress=True)


def open_guard(path: Path) -> Any:
    """A Guard over `path`, with the embedded model ready."""
    from cosa_guard.guard import Guard

    guard = Guard.from_file(path)
    prepare_models(guard.registry)
    return guard
