"""Routes: which models answer a deployment's calls, and the breaker that guards the primary one.

`RoutePool.build(deployment)` turns a deployment into `Routes`: its rendered config, the primary
(CoSAlign) and fallback (cascade) backends, the judge behind its verdict cache, the primary's
circuit breaker (`cosa_guard.breaker`) and the audit sink. Backends, judges, caches, breakers and
audit files are pooled by spec, so deployments that name the same model share one client, and a
reload reuses everything whose spec did not change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosa_guard.audit import AuditSink, JsonlAuditSink
from cosa_guard.backends.base import Backend
from cosa_guard.breaker import BreakerState, CircuitBreaker
from cosa_guard.cache import VerdictCache
from cosa_guard.deployments import LoadedDeployment
from cosa_guard.judges.base import Judge
from cosa_guard.judges.factory import BackendFactory
from cosa_guard.prompts import render_system_prompt
from cosa_guard.settings import BackendSpec, JudgeSpec
from cosa_guard.types import Message
from cosa_guard.verifier import Verifier

logger = logging.getLogger("cosa_guard.routing")

JudgeFactory = Callable[[JudgeSpec, Path], Judge]


@dataclass(slots=True)
class Routes:
    """What one deployment needs per call, built once per config (and rebuilt on reload)."""

    deployment: LoadedDeployment  # what these routes serve
    source: LoadedDeployment  # the registry entry they answer for (newer if that one failed to build)
    system: Message  # the rendered config: the only system message a model ever sees
    primary: Backend | None
    fallback: Backend | None
    verifier: Verifier | None  # None when nothing of this deployment is judged
    breaker: CircuitBreaker | None
    audit: AuditSink | None

    @property
    def fail_open(self) -> bool:
        return self.deployment.spec.fail_mode == "open"


def _key(spec: Any, base_dir: Path) -> str:
    return f"{spec.model_dump_json()}@{base_dir}"


@dataclass(slots=True)
class RoutePool:
    """Builds `Routes`, sharing what equal specs describe; closes what no routes use any more.

    `audit` (when given) receives every deployment's records; otherwise each deployment with an
    `audit.path` gets a JSONL sink, one per file. `borrowed` holds ids of objects the caller
    owns: they are never closed here.
    """

    backend_factory: BackendFactory
    judge_factory: JudgeFactory
    on_breaker_change: Callable[[str, BreakerState], None]
    audit: AuditSink | None = None
    borrowed: set[int] = field(default_factory=set)
    backends: dict[str, Backend] = field(default_factory=dict)
    judges: dict[str, Judge] = field(default_factory=dict)
    caches: dict[str, VerdictCache] = field(default_factory=dict)  # by deployment id + cache spec
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)  # by deployment id + primary spec
    sinks: dict[Path, JsonlAuditSink] = field(default_factory=dict)

    def build(self, deployment: LoadedDeployment) -> Routes:
        spec = deployment.spec
        base = deployment.base_dir
        primary = self._backend(spec.routes.primary, base)
        fallback = self._backend(spec.routes.fallback, base)
        verifier = None
        if fallback is not None or spec.judge_cosalign:
            judge_key = _key(spec.judge, base)
            if judge_key not in self.judges:
                self.judges[judge_key] = self.judge_factory(spec.judge, base)
            cache_key = f"{deployment.id}:{spec.cache.model_dump_json()}"
            if cache_key not in self.caches:
                self.caches[cache_key] = VerdictCache.from_spec(spec.cache)
            verifier = Verifier(
                self.judges[judge_key],
                deployment.config,
                deployment.config_hash,
                floor=spec.floor,
                cache=self.caches[cache_key],
            )
        breaker = None
        if spec.routes.primary is not None:
            breaker_key = (
                f"{deployment.id}:{_key(spec.routes.primary, base)}:{spec.breaker.model_dump_json()}"
            )
            if breaker_key not in self.breakers:
                report = self.on_breaker_change
                self.breakers[breaker_key] = CircuitBreaker.from_spec(
                    spec.breaker, on_change=lambda state: report(deployment.id, state)
                )
            breaker = self.breakers[breaker_key]
        return Routes(
            deployment=deployment,
            source=deployment,
            system=Message("system", render_system_prompt(deployment.config, taxonomy=deployment.taxonomy)),
            primary=primary,
            fallback=fallback,
            verifier=verifier,
            breaker=breaker,
            audit=self.audit if self.audit is not None else self._sink(deployment),
        )

    def _backend(self, spec: BackendSpec | None, base: Path) -> Backend | None:
        if spec is None:
            return None
        key = _key(spec, base)
        if key not in self.backends:
            self.backends[key] = self.backend_factory(spec, base)
        return self.backends[key]

    def _sink(self, deployment: LoadedDeployment) -> AuditSink | None:
        if deployment.spec.audit.path is None:
            return None
        path = (deployment.base_dir / Path(deployment.spec.audit.path).expanduser()).resolve()
        if path not in self.sinks:
            self.sinks[path] = JsonlAuditSink(path)
        return self.sinks[path]

    async def close_unused(self, in_use: Iterable[Routes]) -> None:
        """Close the backends and judges no routes in `in_use` refer to."""
        routes = list(in_use)
        used = {id(b) for r in routes for b in (r.primary, r.fallback) if b is not None}
        used |= {id(r.verifier.judge) for r in routes if r.verifier is not None}
        closing: list[Backend | Judge] = []
        for pool in (self.backends, self.judges):
            for key in [k for k, obj in pool.items() if id(obj) not in used]:
                closing.append(pool.pop(key))
        for obj in closing:
            if id(obj) in self.borrowed:
                continue
            try:
                await obj.aclose()
            except Exception:
                logger.exception("closing %r failed", obj)

    def close_sinks(self) -> None:
        """Write and close the audit files this pool opened (blocks until they are on disk)."""
        sinks, self.sinks = list(self.sinks.values()), {}
        for sink in sinks:
            sink.close()
