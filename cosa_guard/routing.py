"""Routes: which models answer a deployment's calls, and the breaker that guards the primary one.

`RoutePool.build(deployment)` turns a deployment into `Routes`: its rendered config, the primary
(CoSAlign) and fallback (cascade) backends, the judge behind its verdict cache, the primary's
circuit breaker and the audit sink. Backends, judges, caches, breakers and audit files are
pooled by spec, so deployments that name the same model share one client, and a reload reuses
everything whose spec did not change.

The circuit breaker decides whether the primary route may take a call:

    CLOSED ──N consecutive failures (or slow calls)──► OPEN ──reset_after_s──► HALF_OPEN
      ▲                                                 ▲                        │ one probe
      └──────────────── probe succeeds ─────────────────┴──── probe fails ───────┘

While the breaker is not closed, the guard sends traffic to the cascade (or fails fast when the
deployment has none). Everything runs on one event loop and no method awaits, so the state needs
no lock.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosa_guard.audit import AuditSink, JsonlAuditSink
from cosa_guard.backends.base import Backend
from cosa_guard.cache import VerdictCache
from cosa_guard.cascade import Verifier
from cosa_guard.deployments import BackendSpec, BreakerSpec, JudgeSpec, LoadedDeployment
from cosa_guard.judges.base import Judge
from cosa_guard.judges.factory import BackendFactory
from cosa_guard.prompts import render_system_prompt
from cosa_guard.types import Message

logger = logging.getLogger("cosa_guard.routing")

JudgeFactory = Callable[[JudgeSpec, Path], Judge]


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class CircuitBreaker:
    """Counts consecutive primary failures; opens after `failure_threshold`, probes after `reset_after_s`.

    `acquire()` asks for permission before each primary call; the caller then reports exactly one
    of `record_success`, `record_failure` or `release` (the call was abandoned, for example
    because the client went away, which says nothing about the primary's health).
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_on_change",
        "_opened_at",
        "_probing",
        "_state",
        "failure_threshold",
        "reset_after_s",
        "slow_call_s",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        slow_call_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after_s <= 0:
            raise ValueError("reset_after_s must be positive")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.slow_call_s = slow_call_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @classmethod
    def from_spec(
        cls,
        spec: BreakerSpec,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> CircuitBreaker:
        return cls(
            spec.failure_threshold, spec.reset_after_s, spec.slow_call_s, clock=clock, on_change=on_change
        )

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self) -> bool:
        """May this call use the primary? In HALF_OPEN only one probe at a time gets a yes."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.reset_after_s:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self, duration_s: float | None = None) -> None:
        """The primary answered. A call slower than `slow_call_s` counts as a failure."""
        if self.slow_call_s is not None and duration_s is not None and duration_s > self.slow_call_s:
            self.record_failure()
            return
        self._failures = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._trip()
            return
        if self._state is BreakerState.OPEN:
            return  # a late failure of a call admitted before the trip; the clock keeps running
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._trip()

    def release(self) -> None:
        """The admitted call was abandoned without an outcome: let another request probe."""
        self._probing = False

    def _trip(self) -> None:
        self._probing = False
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if state is BreakerState.CLOSED:
            self._failures = 0
        if self._on_change is not None:
            self._on_change(state)


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
