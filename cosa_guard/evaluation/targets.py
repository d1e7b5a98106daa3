"""What an evaluation runs: a deployment served by the real `Guard`, once per dataset config.

A deployment binds one signed config, but CoSA-Score is measured over many. The target keeps
everything else the deployment sets (routes, judge, floor, stream and fail modes, deadline,
input guard) and swaps in each dataset config in turn, in memory, for this run only: nothing is
signed and nothing is served. The ICA baseline (in-context alignment, the paper's baseline) is
the same deployment reduced to its cascade model answering with the config in its system prompt,
with no judge and no input guard: what the model does on its own.

Both targets share one backend and judge per spec, so a local model is loaded once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosa_guard.backends.base import Backend
from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DeploymentRegistry, LoadedDeployment
from cosa_guard.evaluation.dataset import EvalDataset
from cosa_guard.settings import BackendSpec, RoutesSpec
from cosa_guard.types import GenerationParams, GuardResponse, Message

if TYPE_CHECKING:
    from cosa_guard.audit import AuditRecord
    from cosa_guard.guard import Guard

__all__ = ["GuardTarget", "SharedBackends", "describe", "ica_baseline", "per_config_guard"]

BackendFactory = Callable[[BackendSpec, Path], Backend]


class SharedBackends:
    """A backend factory that builds each distinct (spec, folder) once and hands out the same object.

    The guards built with it close what it built (`Guard.aclose`); closing twice is harmless.
    """

    def __init__(self, factory: BackendFactory | None = None) -> None:
        if factory is None:
            from cosa_guard.backends.factory import build_backend

            factory = build_backend
        self._factory = factory
        self._built: dict[str, Backend] = {}

    def __call__(self, spec: BackendSpec, base_dir: Path) -> Backend:
        key = f"{base_dir.resolve()}|{spec.model_dump_json()}"
        if key not in self._built:
            self._built[key] = self._factory(spec, base_dir)
        return self._built[key]


class _DiscardAudit:
    """Evaluation traffic is not production traffic: it stays out of the deployment's audit log."""

    def emit(self, record: AuditRecord) -> None:
        return None


@dataclass(slots=True)
class GuardTarget:
    """Answers a (config, prompt) pair through a guard holding one deployment per dataset config."""

    name: str
    guard: Guard
    deployment_ids: Mapping[str, str]  # dataset config id -> guard deployment id
    description: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)  # of every call

    async def respond(self, config: SafetyConfig, prompt: str) -> GuardResponse:
        return await self.guard.chat(self.deployment_ids[config.id], [Message("user", prompt)], self.params)

    async def aclose(self) -> None:
        await self.guard.aclose()


def ica_baseline(deployment: LoadedDeployment) -> LoadedDeployment:
    """The deployment's cascade model (else its CoSAlign model) on the CoSAlign route, unjudged."""
    spec = deployment.spec
    model = spec.routes.fallback or spec.routes.primary
    return replace(
        deployment,
        spec=spec.model_copy(
            update={
                "routes": RoutesSpec(primary=model),
                "judge_cosalign": False,
                "injection": spec.injection.model_copy(update={"enabled": False}),
            }
        ),
    )


def per_config_guard(
    deployment: LoadedDeployment,
    dataset: EvalDataset,
    *,
    name: str,
    backends: SharedBackends,
    description: str = "",
    params: GenerationParams | None = None,
    **guard_options: Any,
) -> GuardTarget:
    """A `GuardTarget` serving `deployment` once under each of the dataset's configs."""
    from cosa_guard.guard import Guard
    from cosa_guard.metrics import NoopMetrics

    # No API keys: these copies are only ever called by id, and a key may name one deployment only.
    spec = deployment.spec.model_copy(update={"api_keys": ()})
    served = [
        replace(
            deployment,
            id=f"{deployment.id}@{config_id}",
            spec=spec,
            config=entry.config,
            config_hash=entry.config.hash,
        )
        for config_id, entry in dataset.configs.items()
    ]
    guard_options.setdefault("audit", _DiscardAudit())
    guard_options.setdefault("metrics", NoopMetrics())
    guard = Guard(DeploymentRegistry(served), backend_factory=backends, **guard_options)
    return GuardTarget(
        name, guard, {d.config.id: d.id for d in served}, description, params or GenerationParams()
    )


def describe(deployment: LoadedDeployment) -> str:
    """One line for the report: which models answer and what judges them."""
    spec = deployment.spec
    parts = []
    for role, backend in (("CoSAlign", spec.routes.primary), ("cascade", spec.routes.fallback)):
        if backend is not None:
            parts.append(f"{role} route {backend.kind}" + (f":{backend.model}" if backend.model else ""))
    if spec.routes.fallback is not None or spec.judge_cosalign:
        parts.append(f"judge {spec.judge.kind}")
    else:
        parts.append("no judge")
    return ", ".join(parts)
