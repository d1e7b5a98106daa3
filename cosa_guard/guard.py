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
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosa_guard.answers import checked_answer, checked_chunks
from cosa_guard.audit import AuditHealth, AuditRecord, AuditSink, sink_health
from cosa_guard.backends.base import Backend
from cosa_guard.deployments import (
    BackendSpec,
    DeploymentRegistry,
    JudgeSpec,
    LoadedDeployment,
    ReloadReport,
    RoutesSpec,
)
from cosa_guard.errors import ConfigError, CosaGuardError
from cosa_guard.failures import backend_failure_kind, describe, is_upstream_fault, log_detail
from cosa_guard.injection.base import Finding, InputGuard
from cosa_guard.injection.detector import OFF_LOOP_CHARS
from cosa_guard.judges.base import Judge
from cosa_guard.judges.factory import BackendFactory, build_judge, default_backend_factory
from cosa_guard.limits import check_request
from cosa_guard.metrics import Metrics, default_metrics
from cosa_guard.privilege import PrivilegeResult, apply_privilege_rule
from cosa_guard.prompts import with_instructions
from cosa_guard.request_ids import new_request_id
from cosa_guard.routing import BreakerState, CircuitBreaker, JudgeFactory, RoutePool, Routes
from cosa_guard.served import ServedLedger
from cosa_guard.streaming import StreamOutcome, backend_chunks, guard_stream
from cosa_guard.tracing import Stage, end_span, start_child, start_span
from cosa_guard.types import (
    Decision,
    FailureKind,
    FinalEvent,
    GenerationParams,
    GuardResponse,
    Message,
    RefusalReason,
    Retraction,
    Route,
    StreamEvent,
    TextDelta,
    Usage,
    Verdict,
    as_messages,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["BackendFactory", "Guard", "JudgeFactory"]

logger = logging.getLogger("cosa_guard.guard")

_warned_no_input_guard = False

_NO_PARAMS = GenerationParams()


def _params(params: dict[str, Any]) -> GenerationParams:
    return GenerationParams.from_kwargs(**params) if params else _NO_PARAMS


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


# --- One call in flight -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    rt: Routes
    request_id: str
    received: tuple[Message, ...]  # the client's messages, for the audit record
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    stage: str = "input"
    route: Route = Route.NONE
    model: str = ""
    text: str = ""  # the model's answer, before any judging
    verdict: Verdict | None = None
    decision: Decision | None = None
    timings: dict[str, float] = field(default_factory=lambda: {"input": 0.0, "generate": 0.0, "judge": 0.0})
    findings: tuple[Finding, ...] = ()
    input_score: float | None = None
    notes: list[str] = field(default_factory=list)
    instructions: str = ""  # the application's instructions, rendered below the config
    breaker_pending: bool = False  # the primary was admitted and its outcome is not recorded yet
    released: int = 0  # characters streamed to the caller
    cancelled: bool = False
    usage: Usage | None = None  # what the model that produced `text` reported, when it did
    span: Span | None = None  # the call's OpenTelemetry span, when the API is installed

    def model_messages(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """What a model is sent: the one system message (config, then app instructions), then the turns."""
        system = self.rt.system
        if self.instructions:
            system = Message("system", with_instructions(system.content, self.instructions))
        return (system, *messages)

    def begin_span(self, name: str) -> None:
        deployment = self.rt.deployment
        self.span = start_span(
            name,
            attributes={
                "cosa_guard.deployment": deployment.id,
                "cosa_guard.config_hash": deployment.config_hash,
                "cosa_guard.request_id": self.request_id,
            },
        )

    def lap(self, stage: str, since: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - since) * 1000.0

    def response(self) -> GuardResponse:
        decision = self.decision or Decision.failed(FailureKind.BACKEND, "no decision was reached")
        self.timings["total"] = (time.perf_counter() - self.started) * 1000.0
        return GuardResponse(
            text=self.text if decision.is_allowed else self.rt.deployment.refusal_text,
            decision=decision,
            route=self.route,
            deployment_id=self.rt.deployment.id,
            config_hash=self.rt.deployment.config_hash,
            model=self.model,
            categories=self.verdict.categories if self.verdict is not None else frozenset(),
            verdict=self.verdict,
            timings_ms=dict(self.timings),
            request_id=self.request_id,
            usage=self.usage,
        )


def _primary_failed(breaker: CircuitBreaker, exc: BaseException | None) -> None:
    """Count a failed primary call against its breaker only when it is evidence of an unhealthy upstream."""
    if is_upstream_fault(exc):
        breaker.record_failure()
    else:  # this request's own fault (or a bug): the primary's health is unknown
        breaker.release()


def _failure_detail(call: _Call, where: str, exc: BaseException) -> str:
    """`where: <fixed description>` for the decision; the exception goes to the detail log only."""
    log_detail(call.request_id, where, exc)
    return f"{where}: {describe(exc)}"


def _digest(*texts: str) -> str:
    """sha256 over the texts, each followed by a separator that cannot occur in UTF-8 (0xFF)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\xff")
    return h.hexdigest()


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
        self._input_guard = input_guard
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
            return self._input_guard
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
        self._input_guard = module.default_input_guard()
        return self._input_guard

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
            why = _unservable(rt)
            if why is not None:
                out[deployment_id] = why[1]
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

    # --- one call ----------------------------------------------------------------------------------

    async def chat(
        self, deployment_id: str, messages: Any, *, request_id: str | None = None, **params: Any
    ) -> GuardResponse:
        """Guard one chat call; always a `GuardResponse`, whatever happened after the deployment lookup.

        `request_id` names the call in the response and its audit record (default: a new id).
        """
        rt = self._runtime(deployment_id)
        call = _Call(rt, request_id or new_request_id(), client_messages(messages), stream=False)
        call.begin_span("cosa_guard.chat")
        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout_at(loop.time() + rt.deployment.spec.deadline_s):
                    await self._pipeline(call, _params(params))
            except TimeoutError:
                self._on_deadline(call)
        except asyncio.CancelledError:
            self._abandon(call)
            raise
        finally:
            self._finish(call)
        return call.response()

    def stream(
        self, deployment_id: str, messages: Any, *, request_id: str | None = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        """Guard one streamed call: `TextDelta`s, maybe a `Retraction`, then one `FinalEvent`.

        The deployment is looked up now (UnknownDeploymentError before any event); everything
        else happens while the caller iterates. `request_id` as in `chat`.
        """
        rt = self._runtime(deployment_id)
        call = _Call(rt, request_id or new_request_id(), client_messages(messages), stream=True)
        return self._stream(call, _params(params))

    async def _prepare(self, call: _Call) -> tuple[Message, ...] | None:
        """Privilege rule and input guard: the messages the model may see, or None after a decision."""
        spec = call.rt.deployment.spec
        unservable = _unservable(call.rt)
        if unservable is not None:
            call.decision = Decision.failed(*unservable)
            return None
        policy = spec.injection.system_messages
        if sum(len(m.content) for m in call.received if m.role == "system") > OFF_LOOP_CHARS:
            # A long application prompt (a RAG template, say) is scanned off the loop, as user turns are.
            privileged = await asyncio.to_thread(apply_privilege_rule, call.received, policy)
        else:
            privileged = apply_privilege_rule(call.received, policy)
        call.notes.extend(privileged.notes)
        if privileged.rejected:
            call.findings = privileged.findings
            detail = "; ".join(f"{f.detector}: {f.reason}" for f in privileged.findings[:3])
            call.decision = Decision.refused(
                RefusalReason.INPUT_INJECTION,
                f"application instructions try to change the policy: {detail}"
                if detail
                else "client system message rejected (injection.system_messages)",
            )
            return None
        call.instructions = privileged.instructions
        messages = privileged.messages
        input_guard = self._input_guard if spec.injection.enabled else None
        if input_guard is None:
            return privileged.quote(messages)
        started = time.perf_counter()
        try:
            with Stage(call.span, "cosa_guard.input_scan"):
                check = await input_guard.check(messages, spec.injection)
        except Exception as exc:
            call.lap("input", started)
            return self._check_failed(call, _failure_detail(call, "input guard", exc), privileged)
        call.lap("input", started)
        call.findings, call.input_score = check.findings, check.score
        call.notes.extend(check.notes)
        if check.refusal is not None:
            detail = "; ".join(f"{f.detector}: {f.reason}" for f in check.findings[:3])
            call.decision = Decision.refused(check.refusal, detail)
            return None
        if any(m.role == "system" for m in check.messages):
            call.notes.append("input guard returned system messages; removed")
        return tuple(m for m in privileged.quote(check.messages) if m.role != "system")

    def _check_failed(
        self, call: _Call, detail: str, privileged: PrivilegeResult
    ) -> tuple[Message, ...] | None:
        """A check could not run: fail closed, or continue flagged when the deployment fails open."""
        if call.rt.fail_open:
            logger.warning(
                "deployment %r request %s: %s; continuing because fail_mode is open",
                call.rt.deployment.id,
                call.request_id,
                detail,
            )
            call.notes.append(f"fail-open: {detail}")
            return privileged.quote(privileged.messages)
        call.decision = Decision.failed(FailureKind.JUDGE, detail)
        return None

    def _admit(self, call: _Call) -> bool:
        """False (with the decision) for a request the guard answers without any check or model."""
        call.decision = check_request(call.received, call.rt.deployment.spec.limits)
        return call.decision is None

    async def _pipeline(self, call: _Call, params: GenerationParams) -> None:
        messages = await self._prepare(call) if self._admit(call) else None
        if messages is None:
            return
        rt = call.rt
        model_messages = call.model_messages(messages)
        if rt.primary is not None and rt.breaker is not None:
            if rt.breaker.acquire():
                if await self._primary(call, rt.primary, rt.breaker, model_messages, params):
                    if rt.deployment.spec.judge_cosalign:
                        await self._judge(call, messages)
                    else:
                        call.decision = Decision.allowed()
                    return
            else:
                call.notes.append("primary breaker open")
                if rt.fallback is None:
                    call.decision = Decision.failed(
                        FailureKind.BACKEND, "the primary route's breaker is open and there is no fallback"
                    )
            if rt.fallback is None:
                return
            call.decision = None  # the cascade answers instead
        assert rt.fallback is not None
        await self._cascade(call, rt.fallback, model_messages, messages, params)

    async def _primary(
        self,
        call: _Call,
        primary: Backend,
        breaker: CircuitBreaker,
        messages: tuple[Message, ...],
        params: GenerationParams,
    ) -> bool:
        call.stage, call.route, call.model = "primary", Route.COSALIGN, primary.name
        call.breaker_pending = True
        started = time.perf_counter()
        try:
            with Stage(call.span, "cosa_guard.generate"):
                completion = await primary.generate(messages, params)
                text = checked_answer(completion.text, call.rt.deployment.spec.limits.max_answer_chars)
        except Exception as exc:
            call.lap("generate", started)
            call.breaker_pending = False
            _primary_failed(breaker, exc)
            detail = _failure_detail(call, "primary", exc)
            logger.warning("deployment %r request %s: %s", call.rt.deployment.id, call.request_id, detail)
            call.notes.append(detail)
            call.decision = Decision.failed(backend_failure_kind(exc), detail)
            return False
        call.lap("generate", started)
        call.breaker_pending = False
        breaker.record_success(time.perf_counter() - started)
        call.text, call.model, call.usage = text, completion.model or primary.name, completion.usage
        return True

    async def _cascade(
        self,
        call: _Call,
        fallback: Backend,
        model_messages: tuple[Message, ...],
        messages: tuple[Message, ...],
        params: GenerationParams,
    ) -> None:
        call.stage, call.route, call.model = "generate", Route.CASCADE, fallback.name
        started = time.perf_counter()
        try:
            with Stage(call.span, "cosa_guard.generate"):
                completion = await fallback.generate(model_messages, params)
                text = checked_answer(completion.text, call.rt.deployment.spec.limits.max_answer_chars)
        except Exception as exc:
            call.lap("generate", started)
            call.decision = Decision.failed(
                backend_failure_kind(exc), _failure_detail(call, "cascade backend", exc)
            )
            return
        call.lap("generate", started)
        call.text, call.model, call.usage = text, completion.model or fallback.name, completion.usage
        await self._judge(call, messages)

    async def _judge(self, call: _Call, messages: tuple[Message, ...]) -> None:
        verifier = call.rt.verifier
        assert verifier is not None
        call.stage = "judge"
        started = time.perf_counter()
        try:
            with Stage(call.span, "cosa_guard.judge"):
                verdict = await verifier.verdict(messages, call.text)
        except Exception as exc:
            call.lap("judge", started)
            self._judge_failed(call, FailureKind.JUDGE, _failure_detail(call, "judge", exc))
            return
        call.lap("judge", started)
        call.verdict = verdict
        call.decision = verifier.decide(verdict)

    def _judge_failed(self, call: _Call, kind: FailureKind, detail: str) -> None:
        if call.rt.fail_open and call.text:
            logger.warning(
                "deployment %r request %s: %s; answering UNJUDGED because fail_mode is open",
                call.rt.deployment.id,
                call.request_id,
                detail,
            )
            call.decision = Decision.allowed(detail, fail_open=True)
        else:
            call.decision = Decision.failed(kind, detail)

    def _on_deadline(self, call: _Call) -> None:
        detail = f"deadline of {call.rt.deployment.spec.deadline_s:g}s passed during {call.stage}"
        if call.breaker_pending and call.rt.breaker is not None:
            call.breaker_pending = False
            call.rt.breaker.record_failure()
        if call.stage == "judge":
            self._judge_failed(call, FailureKind.TIMEOUT, detail)
        else:
            call.decision = Decision.failed(FailureKind.TIMEOUT, detail)

    def _abandon(self, call: _Call) -> None:
        """The caller went away: the primary's health is unknown, and the record says `cancelled`."""
        if call.breaker_pending and call.rt.breaker is not None:
            call.breaker_pending = False
            call.rt.breaker.release()
        call.cancelled = True

    # --- streaming ---------------------------------------------------------------------------------

    async def _stream(self, call: _Call, params: GenerationParams) -> AsyncGenerator[StreamEvent, None]:
        rt = call.rt
        spec = rt.deployment.spec
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.deadline_s
        finished = False
        call.begin_span("cosa_guard.stream")
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    messages = await self._prepare(call) if self._admit(call) else None
            except TimeoutError:
                self._on_deadline(call)
                messages = None
            if messages is not None:
                async with aclosing(self._stream_routes(call, messages, params, deadline)) as deltas:
                    async for delta in deltas:
                        yield delta
            response = call.response()
            if not response.decision.is_allowed:
                if call.released:
                    yield Retraction(reason=response.decision.label, replacement=response.text)
                else:
                    yield TextDelta(response.text, refusal=True)
            finished = True
            yield FinalEvent(response)
        finally:
            if not finished and call.decision is None:
                self._abandon(call)
            self._finish(call)

    async def _stream_routes(
        self, call: _Call, messages: tuple[Message, ...], params: GenerationParams, deadline: float
    ) -> AsyncGenerator[TextDelta, None]:
        rt = call.rt
        model_messages = call.model_messages(messages)
        if rt.primary is not None and rt.breaker is not None:
            if rt.breaker.acquire():
                call.stage, call.route, call.model = "primary", Route.COSALIGN, rt.primary.name
                call.breaker_pending = True
                mode = rt.deployment.spec.stream.mode if rt.deployment.spec.judge_cosalign else "passthrough"
                outcome = StreamOutcome()
                primary = self._stream_one(
                    call, rt.primary, model_messages, messages, params, mode, deadline, outcome
                )
                async with aclosing(primary) as deltas:
                    async for delta in deltas:
                        yield delta
                self._record_primary(call, rt.breaker, outcome)
                failed_early = (
                    outcome.decision is not None
                    and outcome.decision.failure in (FailureKind.BACKEND, FailureKind.TIMEOUT)
                    and outcome.released == 0
                    and not outcome.backend_done
                )
                if not failed_early or rt.fallback is None or asyncio.get_running_loop().time() >= deadline:
                    return
                call.notes.append(f"primary failed: {outcome.decision.detail if outcome.decision else ''}")
                call.decision = None
            else:
                call.notes.append("primary breaker open")
                if rt.fallback is None:
                    call.decision = Decision.failed(
                        FailureKind.BACKEND, "the primary route's breaker is open and there is no fallback"
                    )
                    return
        assert rt.fallback is not None
        call.stage, call.route, call.model = "generate", Route.CASCADE, rt.fallback.name
        outcome = StreamOutcome()
        cascade = self._stream_one(
            call,
            rt.fallback,
            model_messages,
            messages,
            params,
            rt.deployment.spec.stream.mode,
            deadline,
            outcome,
        )
        async with aclosing(cascade) as deltas:
            async for delta in deltas:
                yield delta

    async def _stream_one(
        self,
        call: _Call,
        backend: Backend,
        model_messages: tuple[Message, ...],
        messages: tuple[Message, ...],
        params: GenerationParams,
        mode: str,
        deadline: float,
        outcome: StreamOutcome,
    ) -> AsyncGenerator[TextDelta, None]:
        rt = call.rt
        verifier = rt.verifier

        async def check(text: str, final: bool) -> Decision:
            assert verifier is not None
            started = time.perf_counter()
            try:
                with Stage(call.span, "cosa_guard.judge"):
                    verdict = await verifier.verdict(messages, text, use_cache=final)
            finally:
                call.lap("judge", started)
            call.verdict = verdict
            return verifier.decide(verdict)

        stream_spec = rt.deployment.spec.stream
        chunks = checked_chunks(
            backend_chunks(backend, model_messages, params), rt.deployment.spec.limits.max_answer_chars
        )
        span = start_child(call.span, "cosa_guard.generate")  # the judge's windows are its siblings
        started = time.perf_counter()
        judged_before = call.timings.get("judge", 0.0)
        released = guard_stream(
            chunks,
            outcome,
            mode=mode,
            check=check if verifier is not None and mode != "passthrough" else None,
            deadline=deadline,
            window_chars=stream_spec.window_chars,
            overlap_chars=stream_spec.overlap_chars,
            fail_open=rt.fail_open,
        )
        try:
            async with aclosing(released) as deltas:
                async for delta in deltas:
                    call.released += len(delta.text)
                    yield delta
        finally:
            await chunks.aclose()
            error = {"error.type": type(outcome.error).__name__} if outcome.error is not None else None
            end_span(span, error, failed=error is not None)
            judging = call.timings.get("judge", 0.0) - judged_before
            call.timings["generate"] = (
                call.timings.get("generate", 0.0) + (time.perf_counter() - started) * 1000.0 - judging
            )
            call.text = outcome.text
            call.decision = outcome.decision
            if outcome.error is not None:
                log_detail(call.request_id, call.stage, outcome.error)
            if outcome.fail_open:
                logger.warning(
                    "deployment %r request %s: %s; streamed UNJUDGED text because fail_mode is open",
                    rt.deployment.id,
                    call.request_id,
                    outcome.decision.detail if outcome.decision else "judge failed",
                )

    def _record_primary(self, call: _Call, breaker: CircuitBreaker, outcome: StreamOutcome) -> None:
        call.breaker_pending = False
        failure = outcome.decision.failure if outcome.decision is not None else None
        if failure is FailureKind.TIMEOUT and not outcome.backend_done:
            breaker.record_failure()
        elif failure is FailureKind.BACKEND:
            _primary_failed(breaker, outcome.error)
        else:
            breaker.record_success(call.timings.get("generate", 0.0) / 1000.0)

    # --- the record of each call -------------------------------------------------------------------

    def _finish(self, call: _Call) -> None:
        """Audit, metrics, the span; runs in `finally`, so a cancelled call is recorded too. Never raises."""
        label = "cancelled" if call.cancelled or call.decision is None else call.decision.label
        try:
            elapsed = time.perf_counter() - call.started
            self._metrics.observe(call.rt.deployment.id, label, call.route.value, elapsed, call.timings)
            sink = call.rt.audit
            if sink is not None:
                sink.emit(self._record(call, label, elapsed))
        except Exception:
            logger.exception("could not record request %s", call.request_id)
        try:  # the application's span processors run here, and may raise
            end_span(call.span, {"cosa_guard.route": call.route.value, "cosa_guard.decision": label})
        except Exception:
            logger.exception("could not end the span of request %s", call.request_id)

    def _record(self, call: _Call, label: str, elapsed: float) -> AuditRecord:
        rt = call.rt
        include_text = rt.deployment.spec.audit.include_text
        decision = call.decision
        return AuditRecord(
            ts=time.time(),
            request_id=call.request_id,
            deployment=rt.deployment.id,
            config_hash=rt.deployment.config_hash,
            decision=label,
            route=call.route.value,
            latency_ms=elapsed * 1000.0,
            categories=tuple(sorted(call.verdict.categories)) if call.verdict is not None else (),
            score=call.verdict.score if call.verdict is not None else None,
            model=call.model,
            fail_open=decision.fail_open if decision is not None else False,
            stream=call.stream,
            detail=decision.detail if decision is not None else "",
            input_score=call.input_score,
            input_findings=tuple(_finding(f) for f in call.findings),
            notes=tuple(call.notes),
            timings_ms=dict(call.timings),
            prompt_sha256=_digest(*(part for m in call.received for part in (m.role, m.content))),
            response_sha256=_digest(call.text) if call.text else "",
            prompt=[m.to_dict() for m in call.received] if include_text else None,
            response=call.text if include_text else None,
        )


def _unservable(rt: Routes) -> tuple[FailureKind, str] | None:
    """Why every call of this deployment fails now, or None."""
    config = rt.deployment.config
    if config.expires_at is not None and config.is_expired():
        return FailureKind.CONFIG, "the deployment's config has expired"
    if rt.deployment.spec.audit.required:
        health = sink_health(rt.audit) if rt.audit is not None else None
        if rt.audit is None or (health is not None and not health.ok):
            return FailureKind.AUDIT, "the deployment requires its audit log, which cannot be written now"
    return None


def _finding(finding: Finding) -> Mapping[str, Any]:
    return {
        "detector": finding.detector,
        "reason": finding.reason,
        "message_index": finding.message_index,
        "span": list(finding.span) if finding.span is not None else None,
        "score": finding.score,
    }
