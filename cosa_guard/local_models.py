"""Loading the local models a registry's deployments name before serving, not on the first request.

transformers and onnx backends share one loaded model per folder and settings in the process, so
the copy loaded here is the one the guard's own backends find. The CLI (`serve`, `chat`, `eval`)
and each server worker call this once at start-up, where progress bars and failures are seen.
"""

from __future__ import annotations

from cosa_guard.backends import factory
from cosa_guard.deployments import DeploymentRegistry

# Backends whose loaded model is shared process-wide: loading one here warms the guard's.
SHARED_LOCAL_KINDS = ("transformers", "onnx")


async def load_local_models(registry: DeploymentRegistry) -> None:
    """Load each distinct local model that a route of `registry` names, once."""
    seen: set[str] = set()
    for deployment in (registry.get(i) for i in registry.ids()):
        for spec in (deployment.spec.routes.primary, deployment.spec.routes.fallback):
            if spec is None or spec.kind not in SHARED_LOCAL_KINDS:
                continue
            key = spec.model_dump_json()
            if key in seen:
                continue
            seen.add(key)
            load = getattr(factory.build_backend(spec, deployment.base_dir), "load", None)
            if load is not None:
                await load()
