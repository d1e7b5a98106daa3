"""The call path: prepare → route → judge → decide → record, one pipeline for plain and streamed calls.

    prepare   cosa_guard.prepare: deployment state, request limits, privilege rule, input guard
    route     the primary (CoSAlign) while its breaker admits the call, else the cascade; a primary
              that fails before any of its text reached the caller falls over to the cascade
    answer    plain: `generate`, then the judge; streamed: the judged stream (`guard_stream`)
    decide    `_decide` sets the call's decision, the one place it is set
    record    metrics, the audit record and the call's span, also for a cancelled call

Plain and streamed calls differ only in how one backend answers (`_generated` / `_streamed`);
both report an `Attempt`, and route selection reads nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from cosa_guard.answers import checked_answer, checked_chunks
from cosa_guard.backends.base import Backend
from cosa_guard.breaker import CircuitBreaker
from cosa_guard.call import Call
from cosa_guard.failures import backend_failure_kind, is_upstream_fault, log_detail
from cosa_guard.injection.base import InputGuard
from cosa_guard.metrics import Metrics
from cosa_guard.prepare import failure_detail, prepare
from cosa_guard.streaming import StreamEnd, guard_stream
from cosa_guard.tracing import end_span, start_child
from cosa_guard.types import (
    Decision,
    FailureKind,
    FinalEvent,
    GenerationParams,
    GuardResponse,
    Message,
    Route,
    StreamEvent,
    TextDelta,
)

__all__ = ["Pipeline"]

logger = logging.getLogger("cosa_guard.guard")

_ALLOWED = Decision.allowed()


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one backend's answer ended."""

    decision: Decision
    released: int = 0  # characters of it the caller was shown
    finished: bool = False  # the backend completed its answer (a later failure is the judge's)
    error: BaseException | None = None  # the backend's or judge's exception, for the breaker

    @property
    def falls_over(self) -> bool:
        """A failed generation nobody saw any of: another route may still answer the call."""
        failed = self.decision.failure in (FailureKind.BACKEND, FailureKind.TIMEOUT)
        return failed and self.released == 0 and not self.finished


class Pipeline:
    """Runs calls for a `Guard`: `chat` returns the response, `stream` yields its events."""

    __slots__ = ("input_guard", "metrics")

    def __init__(self, metrics: Metrics, input_guard: InputGuard | None = None) -> None:
        self.metrics = metrics
        self.input_guard = input_guard  # the guard resolves the default detector on first need

    async def chat(self, call: Call, params: GenerationParams) -> GuardResponse:
        call.begin_span("cosa_guard.chat")
        try:
            async for _ in self._decide(call, params):  # a plain call releases no text
                pass
        except asyncio.CancelledError:
            self._abandon(call)
            raise
        finally:
            self._record(call)
        return call.response()

    async def stream(self, call: Call, params: GenerationParams) -> AsyncGenerator[StreamEvent, None]:
        call.begin_span("cosa_guard.stream")
        try:
            async with aclosing(self._decide(call, params)) as deltas:
                async for delta in deltas:
                    yield delta
            yield FinalEvent(call.response())
        finally:
            if call.decision is None:  # the caller stopped iterating before the decision
                self._abandon(call)
            self._record(call)

    async def _decide(self, call: Call, params: GenerationParams) -> AsyncGenerator[TextDelta, None]:
        """Prepare and route; yields the text a stream releases, then sets `call.decision`."""
        deadline = asyncio.get_running_loop().time() + call.rt.deployment.spec.deadline_s
        outcome: tuple[Message, ...] | Decision
        try:
            # A plain call runs whole under the deadline; a stream's routes watch it themselves,
            # as a timeout cannot span the points where the stream hands text to its caller.
            async with asyncio.timeout_at(deadline):
                outcome = await prepare(call, self.input_guard)
                if not call.stream and not isinstance(outcome, Decision):
                    async for step in self._route(call, outcome, params, deadline):
                        assert isinstance(step, Decision), "a plain call releases no text"
                        outcome = step
        except TimeoutError:
            outcome = self._on_deadline(call)
        if isinstance(outcome, tuple):
            async with aclosing(self._route(call, outcome, params, deadline)) as steps:
                async for step in steps:
                    if isinstance(step, Decision):
                        outcome = step
                    else:
                        yield step
        assert isinstance(outcome, Decision), "a route ended without a decision"
        call.decision = outcome

    async def _route(
        self, call: Call, messages: tuple[Message, ...], params: GenerationParams, deadline: float
    ) -> AsyncGenerator[TextDelta | Decision, None]:
        """Route selection, written once: released text, then the decision (last)."""
        rt = call.rt
        if rt.primary is not None and rt.breaker is not None:
            if rt.breaker.acquire():
                attempt: Attempt | None = None
                primary = self._answer(call, Route.COSALIGN, rt.primary, messages, params, deadline)
                async with aclosing(primary) as steps:
                    async for step in steps:
                        if isinstance(step, Attempt):
                            attempt = step
                        else:
                            yield step
                assert attempt is not None
                late = asyncio.get_running_loop().time() >= deadline
                if not attempt.falls_over or rt.fallback is None or late:
                    yield attempt.decision
                    return
                logger.warning(
                    "deployment %r request %s: primary failed (%s); the cascade answers",
                    rt.deployment.id,
                    call.request_id,
                    attempt.decision.detail,
                )
                call.notes.append(f"primary failed: {attempt.decision.detail}")
            else:
                call.notes.append("primary breaker open")
                if rt.fallback is None:
                    detail = "the primary route's breaker is open and there is no fallback"
                    yield Decision.failed(FailureKind.BACKEND, detail)
                    return
        assert rt.fallback is not None
        async with aclosing(
            self._answer(call, Route.CASCADE, rt.fallback, messages, params, deadline)
        ) as steps:
            async for step in steps:
                yield step.decision if isinstance(step, Attempt) else step

    async def _answer(
        self,
        call: Call,
        route: Route,
        backend: Backend,
        messages: tuple[Message, ...],
        params: GenerationParams,
        deadline: float,
    ) -> AsyncGenerator[TextDelta | Attempt, None]:
        """One backend answers on `route`: released text (streamed calls), then its `Attempt`."""
        primary = route is Route.COSALIGN
        call.enter("primary" if primary else "generate", route, backend.name)
        call.breaker_pending = primary
        judged = not primary or call.rt.deployment.spec.judge_cosalign
        if not call.stream:
            yield await self._generated(call, backend, messages, params, judged)
            return
        async with aclosing(self._streamed(call, backend, messages, params, judged, deadline)) as steps:
            async for step in steps:
                yield step

    # --- plain calls ------------------------------------------------------------------------------

    async def _generated(
        self,
        call: Call,
        backend: Backend,
        messages: tuple[Message, ...],
        params: GenerationParams,
        judged: bool,
    ) -> Attempt:
        try:
            with call.step("generate", "cosa_guard.generate"):
                completion = await backend.generate(call.model_messages(messages), params)
                text = checked_answer(completion.text, call.rt.deployment.spec.limits.max_answer_chars)
        except Exception as exc:
            where = "primary" if call.route is Route.COSALIGN else "cascade backend"
            failed = Attempt(
                Decision.failed(backend_failure_kind(exc), failure_detail(call, where, exc)), error=exc
            )
            self._record_primary(call, failed)
            return failed
        call.text, call.model, call.usage = text, completion.model or backend.name, completion.usage
        self._record_primary(call, Attempt(_ALLOWED, finished=True))  # before judging: the model answered
        return Attempt(await self._judge(call, messages) if judged else _ALLOWED, finished=True)

    async def _judge(self, call: Call, messages: tuple[Message, ...]) -> Decision:
        verifier = call.rt.verifier
        assert verifier is not None
        call.stage = "judge"
        try:
            with call.step("judge", "cosa_guard.judge"):
                verdict = await verifier.verdict(messages, call.text)
        except Exception as exc:
            return self._judge_failed(call, FailureKind.JUDGE, failure_detail(call, "judge", exc))
        call.verdict = verdict
        return verifier.decide(verdict)

    def _judge_failed(self, call: Call, kind: FailureKind, detail: str) -> Decision:
        if not (call.rt.fail_open and call.text):
            return Decision.failed(kind, detail)
        logger.warning(
            "deployment %r request %s: %s; answering UNJUDGED because fail_mode is open",
            call.rt.deployment.id,
            call.request_id,
            detail,
        )
        return Decision.allowed(detail, fail_open=True)

    # --- streamed calls ---------------------------------------------------------------------------

    async def _streamed(
        self,
        call: Call,
        backend: Backend,
        messages: tuple[Message, ...],
        params: GenerationParams,
        judged: bool,
        deadline: float,
    ) -> AsyncGenerator[TextDelta | Attempt, None]:
        rt = call.rt
        verifier = rt.verifier if judged else None

        async def check(text: str, final: bool) -> Decision:
            assert verifier is not None
            with call.step("judge", "cosa_guard.judge"):
                verdict = await verifier.verdict(messages, text, use_cache=final)
            call.verdict = verdict
            return verifier.decide(verdict)

        spec = rt.deployment.spec
        chunks = checked_chunks(
            backend.stream(call.model_messages(messages), params), spec.limits.max_answer_chars
        )
        span = start_child(call.span, "cosa_guard.generate")  # the judge's windows are its siblings
        started, judged_before = time.perf_counter(), call.timings.get("judge", 0.0)
        end: StreamEnd | None = None
        try:
            released = guard_stream(
                chunks,
                mode=spec.stream.mode if judged else "passthrough",
                check=check if verifier is not None else None,
                deadline=deadline,
                window_chars=spec.stream.window_chars,
                overlap_chars=spec.stream.overlap_chars,
                fail_open=rt.fail_open,
            )
            async with aclosing(released) as steps:
                async for step in steps:
                    if isinstance(step, StreamEnd):
                        end = step
                    else:
                        call.text += step.text  # what the audit keeps if the caller leaves early
                        yield step
        finally:
            await chunks.aclose()
            error = end.error if end is not None else None
            end_span(span, {"error.type": type(error).__name__} if error else None, failed=error is not None)
            judging = call.timings.get("judge", 0.0) - judged_before
            call.lap("generate", started)
            call.timings["generate"] -= judging
        assert end is not None
        yield self._stream_ended(call, end)

    def _stream_ended(self, call: Call, end: StreamEnd) -> Attempt:
        call.text = end.text
        if end.error is not None:
            log_detail(call.request_id, call.stage, end.error)
        if end.decision.fail_open:
            logger.warning(
                "deployment %r request %s: %s; streamed UNJUDGED text because fail_mode is open",
                call.rt.deployment.id,
                call.request_id,
                end.decision.detail,
            )
        attempt = Attempt(end.decision, end.released, end.backend_done, end.error)
        self._record_primary(call, attempt)
        return attempt

    # --- the breaker, the deadline, the record ----------------------------------------------------

    def _record_primary(self, call: Call, attempt: Attempt) -> None:
        """Tell the primary's breaker how its call went, once; only its upstream's faults count against it."""
        breaker = call.rt.breaker
        if not call.breaker_pending or breaker is None:
            return
        call.breaker_pending = False
        failure = attempt.decision.failure
        if failure is FailureKind.TIMEOUT and not attempt.finished:
            breaker.record_failure()
        elif failure is FailureKind.BACKEND:
            _primary_failed(breaker, attempt.error)
        else:
            breaker.record_success(call.timings.get("generate", 0.0) / 1000.0)

    def _on_deadline(self, call: Call) -> Decision:
        detail = f"deadline of {call.rt.deployment.spec.deadline_s:g}s passed during {call.stage}"
        if call.breaker_pending and call.rt.breaker is not None:
            call.breaker_pending = False
            call.rt.breaker.record_failure()
        if call.stage == "judge":
            return self._judge_failed(call, FailureKind.TIMEOUT, detail)
        return Decision.failed(FailureKind.TIMEOUT, detail)

    def _abandon(self, call: Call) -> None:
        """The caller went away: the primary's health is unknown, and the record says `cancelled`."""
        if call.breaker_pending and call.rt.breaker is not None:
            call.breaker_pending = False
            call.rt.breaker.release()
        call.cancelled = True

    def _record(self, call: Call) -> None:
        """Metrics, audit, the span; runs in `finally`, so a cancelled call is recorded too. Never raises."""
        label = "cancelled" if call.cancelled or call.decision is None else call.decision.label
        try:
            elapsed = time.perf_counter() - call.started
            self.metrics.observe(call.rt.deployment.id, label, call.route.value, elapsed, call.timings)
            sink = call.rt.audit
            if sink is not None:
                sink.emit(call.audit_record(label, elapsed))
        except Exception:
            logger.exception("could not record request %s", call.request_id)
        try:  # the application's span processors run here, and may raise
            end_span(call.span, _closing_attributes(call, label))
        except Exception:
            logger.exception("could not end the span of request %s", call.request_id)


def _closing_attributes(call: Call, label: str) -> dict[str, str]:
    """The call span's closing labels: route, decision and, once judged, the categories and deciding rule."""
    attributes = {"cosa_guard.route": call.route.value, "cosa_guard.decision": label}
    if call.verdict is not None:
        attributes["cosa_guard.categories"] = ",".join(sorted(call.verdict.categories))
        if call.verdict.rule_number is not None:
            attributes["cosa_guard.rule"] = str(call.verdict.rule_number)
    return attributes


def _primary_failed(breaker: CircuitBreaker, exc: BaseException | None) -> None:
    """Count a failed primary call against its breaker only when it is evidence of an unhealthy upstream."""
    if is_upstream_fault(exc):
        breaker.record_failure()
    else:  # this request's own fault (or a bug): the primary's health is unknown
        breaker.release()
