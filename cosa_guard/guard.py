"""The guard: every chat call of a deployment runs through its signed config.

    guard = Guard.from_file("deployments.yaml")
    response = await guard.chat("game-studio", [{"role": "user", "content": "..."}])
    response.decision.label        # "allowed", "refused:output_violation", "failed:timeout", ...

One call, in order: the privilege rule on client system messages (by default they become the
application's instructions, below the config) → the input guard (config injection) → the route
(the CoSAlign model while its circuit breaker is closed, else the cascade: generate, judge,
refuse on violation) → optional judging of CoSAlign answers → audit and metrics.
Everything after the deployment lookup runs under the deployment's deadline. A refusal is a
normal answer carrying the deployment's refusal text; a failure (timeout, backend, judge) carries
the refusal text too and never the model's unjudged answer, unless the deployment explicitly
fails open, which is flagged in `Decision.fail_open` and logged at WARNING.
This module is the face: construction, reload, `chat`, `stream`, `warm_up`, `aclose`. The call
path itself, the same for plain and streamed calls, is `cosa_guard.pipeline`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cosa_guard.audit import AuditHealth, AuditSink, sink_health
from cosa_guard.backends.base import Backend, Preloadable
from cosa_guard.breaker import BreakerState
from cosa_guard.call import Call
from cosa_guard.deployments import DeploymentRegistry, LoadedDeployment, ReloadReport
from cosa_guard.errors import ConfigError, CosaGuardError
from cosa_guard.injection.base import InputGuard
from cosa_guard.judges.base import Judge
from cosa_guard.judges.factory import BackendFactory, build_judge, default_backend_factory
from cosa_guard.metrics import Metrics, default_metrics
from cosa_guard.pipeline import Pipeline
from cosa_guard.prepare import unservable
from cosa_guard.request_ids import new_request_id
from cosa_guard.routing import JudgeFactory, RoutePool, Routes
from cosa_guard.served import ServedLedger
from cosa_guard.settings import BackendSpec, JudgeSpec, RoutesSpec
from cosa_guard.types import GenerationParams, GuardResponse, Message, StreamEvent, as_messages

__all__ = ["BackendFactory", "Guard", "JudgeFactory"]

logger = logging.getLogger("cosa_guard.guard")

_warned_no_input_guard = False

_NO_PARAMS = GenerationParams()


def client_messages(messages: Any) -> tuple[Message, ...]:
    """The client's turns as Messages: Message objects, OpenAI-style dicts or LangChain messages."""
    items = tuple(messages)
    if all(isinstance(m, Message | Mapping) for m in items):
        return as_messages(items)
    from cosa_guard.langchain_messages import from_langchain  # duck-typed: langchain-core is not imported

    out: list[Message] = []
    for item in items:
        if isinstance(item, Message | Mapping):
            out.extend(as_messages([item]))
        elif hasattr(item, "type") and hasattr(item, "content"):
            out.extend(from_langchain([item]))
        else:
            raise TypeError(
                f"a message must be a Message, a dict or a LangChain message, not {type(item).__name__}"
            )
    return tuple(out)


class Guard:
    """Serves the deployments of a `DeploymentRegistry`, each with its signed config.

    `backend_factory(spec, base_dir)` and `judge_factory(spec, base_dir)` build what the
    deployments name (defaults: `cosa_guard.backends.factory.build_backend` and
    `cosa_guard.judges.factory.build_judge`). `input_guard` checks client turns for config
    injection (default: `cosa_guard.injection.detector.default_input_guard()` when a deployment
    enables it). `audit` receives every record (default: the JSONL file each deployment names in
    `audit.path`); `metrics` defaults to Prometheus when prometheus-client is installed.
    """

    def __init__(
        self,
        registry: DeploymentRegistry,
        *,
        backend_factory: BackendFactory | None = None,
        judge_factory: JudgeFactory | None = None,
        input_guard: InputGuard | None = None,
        audit: AuditSink | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._registry = registry
        self._backend_factory = backend_factory or default_backend_factory
        self._metrics = metrics if metrics is not None else default_metrics()
        self._pipeline = Pipeline(self._metrics, input_guard)
        self._input_guard_resolved = input_guard is not None
        self._pool = RoutePool(
            self._backend_factory, judge_factory or self._default_judge, self._breaker_changed, audit
        )
        self._runtimes: dict[str, Routes] = {}
        self._reloading = False  # while a reload builds off the loop, calls keep their current runtime
        self._closed = False
        failures = self._rebuild()
        if failures:
            raise ConfigError(
                "cannot serve " + "; ".join(f"deployment {i!r}: {why}" for i, why in sorted(failures.items()))
            )

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, ledger: ServedLedger | None = None, **kw: Any) -> Guard:
        """Load and verify a deployments file (`DeploymentRegistry.load`, with `ledger`) and serve it."""
        return cls(DeploymentRegistry.load(path, ledger=ledger), **kw)

    @classmethod
    def single(
        cls,
        deployment: LoadedDeployment,
        *,
        primary: Backend | None = None,
        fallback: Backend | None = None,
        judge: Judge | None = None,
        input_guard: InputGuard | None = None,
        audit: AuditSink | None = None,
        metrics: Metrics | None = None,
    ) -> Guard:
        """One deployment served by the given objects.

        `primary` (a CoSAlign model) and `fallback` (the cascade's generator) replace the
        deployment's routes; at least one is needed. `judge` replaces the deployment's judge
        (default: built from its `judge` spec). The guard never closes objects given here, and
        `reload()` raises DeploymentError: there is no deployments file behind it.
        """
        if primary is None and fallback is None:
            raise ValueError("Guard.single needs a primary (CoSAlign) or a fallback (cascade) backend")
        given: dict[str, Backend] = {}
        if primary is not None:
            given["primary"] = primary
        if fallback is not None:
            given["fallback"] = fallback

        def slot(name: str, backend: Backend | None) -> BackendSpec | None:
            return (
                None
                if backend is None
                else BackendSpec(kind="object", model=backend.name, options={"slot": name})
            )

        routes = RoutesSpec(primary=slot("primary", primary), fallback=slot("fallback", fallback))
        served = replace(deployment, spec=deployment.spec.model_copy(update={"routes": routes}))

        def backends(spec: BackendSpec, base_dir: Path) -> Backend:
            return given[str(spec.options["slot"])]

        def judges(spec: JudgeSpec, base_dir: Path) -> Judge:
            return judge if judge is not None else build_judge(spec, base_dir)

        guard = cls(
            DeploymentRegistry([served]),
            backend_factory=backends,
            judge_factory=judges,
            input_guard=input_guard,
            audit=audit,
            metrics=metrics,
        )
        guard._pool.borrowed |= {id(b) for b in given.values()} | (
            {id(judge)} if judge is not None else set()
        )
        return guard

    def _default_judge(self, spec: JudgeSpec, base_dir: Path) -> Judge:
        return build_judge(spec, base_dir, backend_factory=self._backend_factory)

    def _resolve_input_guard(self) -> InputGuard | None:
        if self._input_guard_resolved:
            return self._pipeline.input_guard
        self._input_guard_resolved = True
        try:
            module = importlib.import_module("cosa_guard.injection.detector")
        except ModuleNotFoundError as exc:
            if exc.name != "cosa_guard.injection.detector":
                raise
            global _warned_no_input_guard
            if not _warned_no_input_guard:
                _warned_no_input_guard = True
                logger.warning(
                    "cosa_guard.injection.detector is not installed: only the privilege rule on client "
                    "system messages protects the configs; pass Guard(input_guard=...) to add a detector"
                )
            return None
        self._pipeline.input_guard = module.default_input_guard()
        return self._pipeline.input_guard

    def _rebuild(self, only: Iterable[str] | None = None) -> dict[str, str]:
        """Build runtimes for the registry's deployments (or `only` these); returns id -> why it failed.

        A deployment that fails to build keeps its previous runtime, if it had one.
        """
        failures: dict[str, str] = {}
        ids = list(only) if only is not None else list(self._registry.ids())
        runtimes = dict(self._runtimes) if only is not None else {}
        for deployment_id in ids:
            deployment = self._registry.get(deployment_id)
            try:
                runtimes[deployment_id] = self._pool.build(deployment)
                if deployment.spec.injection.enabled:
                    self._resolve_input_guard()
            except (CosaGuardError, OSError, ValueError, ImportError) as exc:
                failures[deployment_id] = f"{type(exc).__name__}: {exc}"
                if deployment_id in self._runtimes:  # keep serving the last good one; do not retry every call
                    runtimes[deployment_id] = replace(self._runtimes[deployment_id], source=deployment)
        self._runtimes = runtimes
        return failures

    def _breaker_changed(self, deployment_id: str, state: BreakerState) -> None:
        level = logging.INFO if state is BreakerState.CLOSED else logging.WARNING
        logger.log(level, "deployment %r: primary route breaker is %s", deployment_id, state.value)
        self._metrics.breaker_state(deployment_id, state.value)

    # --- public surface --------------------------------------------------------------------------

    @property
    def registry(self) -> DeploymentRegistry:
        return self._registry

    def by_api_key(self, key: str) -> LoadedDeployment:
        """The deployment this API key belongs to; UnknownDeploymentError otherwise."""
        return self._registry.by_api_key(key)

    def unservable(self) -> dict[str, str]:
        """Deployments that fail every call right now, and why: a config past its `expires_at`, or
        an audit log the deployment requires (`audit.required`) that cannot be written."""
        out = {}
        for deployment_id, rt in self._runtimes.items():
            why = unservable(rt)
            if why is not None:
                out[deployment_id] = why.detail
        return out

    def audit_health(self) -> tuple[AuditHealth, ...]:
        """How each audit file the guard writes is doing (sinks that do not report are left out)."""
        sinks = [self._pool.audit] if self._pool.audit is not None else list(self._pool.sinks.values())
        return tuple(h for h in map(sink_health, sinks) if h is not None)

    def _runtime(self, deployment_id: str) -> Routes:
        if self._closed:
            raise RuntimeError("this Guard was closed (aclose); build a new one")
        deployment = self._registry.get(deployment_id)  # UnknownDeploymentError: never a default config
        rt = self._runtimes.get(deployment_id)
        if rt is None or (rt.source is not deployment and not self._reloading):
            # The registry was reloaded behind our back (e.g. by its own watcher): serve what it holds now.
            failures = self._rebuild(only=[deployment_id])
            rt = self._runtimes.get(deployment_id)
            if rt is None:
                raise ConfigError(
                    f"deployment {deployment_id!r} cannot be served: {failures.get(deployment_id)}"
                )
        return rt

    async def reload(self) -> ReloadReport:
        """Re-read the deployments file and bundles; new configs serve from the next call.

        Backends and judges whose specs did not change are reused; new ones are built in a worker
        thread (loading a model must not stall the calls in flight, which keep their current
        runtime meanwhile). A deployment whose new backends or judge cannot be built keeps serving
        its previous runtime (listed in `kept`).
        """
        self._reloading = True
        try:
            report = await asyncio.to_thread(self._registry.reload)
            failures = await asyncio.to_thread(self._rebuild)
        finally:
            self._reloading = False
        await self._pool.close_unused(self._runtimes.values())
        if not failures:
            return report
        for deployment_id, why in failures.items():
            logger.warning("deployment %r keeps its previous runtime: %s", deployment_id, why)
        kept = {**report.kept, **{i: w for i, w in failures.items() if i in self._runtimes}}
        failed = {**report.failed, **{i: w for i, w in failures.items() if i not in self._runtimes}}
        loaded = tuple(i for i in report.loaded if i not in failures)
        return ReloadReport(loaded=loaded, kept=kept, removed=report.removed, failed=failed)

    async def aclose(self) -> None:
        """Close every backend and judge the guard built, and the audit files it opened."""
        self._closed = True
        self._runtimes = {}
        await self._pool.close_unused(())
        await asyncio.to_thread(self._pool.close_sinks)

    async def warm_up(self) -> None:
        """Load the local models the deployments' routes name now, not on their first call.

        The server awaits it in its lifespan (before it reports ready), `cosa-guard chat` and
        `cosa-guard eval` before their first prompt. Backends that load lazily (`Preloadable`)
        load here; the rest have nothing to do. So does the input guard when a deployment runs its
        classifier (the shipped one exports its ONNX model on a fresh cache, ~7 s, then loads).
        """
        for backend in list(self._pool.backends.values()):
            if isinstance(backend, Preloadable):
                await backend.load()
        guard = self._pipeline.input_guard
        specs = (self._registry.get(i).spec.injection for i in self._registry.ids())
        if any(s.enabled and s.classifier for s in specs) and isinstance(guard, Preloadable):
            await guard.load()

    # --- one call ----------------------------------------------------------------------------------

    async def chat(
        self,
        deployment_id: str,
        messages: Any,
        params: GenerationParams | None = None,
        *,
        request_id: str | None = None,
    ) -> GuardResponse:
        """Guard one chat call; always a `GuardResponse`, whatever happened after the deployment lookup.

        `params` go to the model that answers (default: its own). `request_id` names the call in
        the response and its audit record (default: a new id).
        """
        return await self._pipeline.chat(
            self._call(deployment_id, messages, request_id, stream=False), params or _NO_PARAMS
        )

    def stream(
        self,
        deployment_id: str,
        messages: Any,
        params: GenerationParams | None = None,
        *,
        request_id: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Guard one streamed call: `TextDelta`s, then one `FinalEvent` with the decision.

        The deployment is looked up now (UnknownDeploymentError before any event); everything
        else happens while the caller iterates. `params` and `request_id` as in `chat`.
        """
        return self._pipeline.stream(
            self._call(deployment_id, messages, request_id, stream=True), params or _NO_PARAMS
        )

    def _call(self, deployment_id: str, messages: Any, request_id: str | None, *, stream: bool) -> Call:
        rt = self._runtime(deployment_id)
        return Call(rt, request_id or new_request_id(), client_messages(messages), stream=stream)
