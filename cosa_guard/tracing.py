"""Spans for guarded calls: OpenTelemetry spans, and the steps of an observer the caller set.

OpenTelemetry: when opentelemetry-api is installed (the `otel` extra). The API is imported at the
first span, not with `cosa_guard`, and spans go to whatever tracer provider the application
configured; without an SDK the API's no-op tracer makes them nearly free. Spans are started with
an explicit parent instead of being made current: a streamed call's span lives across the
caller's iterations, where an attached context could not be detached safely.

Observers: another tracing system (the LangChain integration's child runs) sees the same steps
through a `StepObserver` set with `observe` around the call. The observer is read once, when the
call's span starts; its steps then follow their parent, so a stream iterated from other tasks
(LangChain's sync API) keeps reporting to it. Without an observer and without the API a span is
None, and costs a context-variable read.

Attributes carry identifiers and labels only, never prompt, answer or config text.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from cosa_guard.scoped import scoped

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.context import Context

__all__ = ["Span", "Stage", "Step", "StepObserver", "end_span", "observe", "start_child", "start_span"]

logger = logging.getLogger("cosa_guard.tracing")


class StepObserver(Protocol):
    """Where a call's steps are reported besides OpenTelemetry: `start` begins its top step."""

    def start(self, name: str, attributes: Mapping[str, str] | None) -> Step: ...


class Step(StepObserver, Protocol):
    """One started step; `start` begins a child step, `end` ends this one.

    `end` gets the step's closing attributes; a failed step's carry only `error.type`.
    """

    def end(self, attributes: Mapping[str, str] | None, *, failed: bool) -> None: ...


_OBSERVER: ContextVar[StepObserver | None] = ContextVar("cosa_guard_step_observer", default=None)


def observe(observer: StepObserver | None) -> AbstractContextManager[None]:
    """Calls that start inside the block report their steps to `observer` too (`scoped`)."""
    return scoped(_OBSERVER, observer)


@dataclass(frozen=True, slots=True)
class Span:
    """A started span: its OpenTelemetry span and its observer's step, whichever there are."""

    otel: trace.Span | None
    step: Step | None


@dataclass(frozen=True, slots=True)
class _Otel:
    tracer: trace.Tracer
    in_context: Callable[[trace.Span], Context]
    error: trace.Status  # without a description: an exception's text may quote the prompt


@functools.cache
def _otel() -> _Otel | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    # A ProxyTracer until the application sets a provider, which it may do after the first call.
    return _Otel(
        trace.get_tracer("cosa_guard"), trace.set_span_in_context, trace.Status(trace.StatusCode.ERROR)
    )


def start_span(name: str, attributes: Mapping[str, str] | None = None) -> Span | None:
    """A call's span: a child of the current OpenTelemetry span, the current observer's top step.

    None when there is neither the API nor an observer.
    """
    otel = _otel()
    otel_span = otel.tracer.start_span(name, attributes=attributes) if otel is not None else None
    return _span(otel_span, _started(_OBSERVER.get(), name, attributes))


def start_child(parent: Span | None, name: str) -> Span | None:
    """A child of `parent`. No OpenTelemetry child under a span that does not record (no SDK, or
    sampled out), as its children would not either."""
    if parent is None:
        return None
    otel_span = None
    if parent.otel is not None and parent.otel.is_recording():
        otel = _otel()
        assert otel is not None
        otel_span = otel.tracer.start_span(name, context=otel.in_context(parent.otel))
    return _span(otel_span, _started(parent.step, name, None))


def end_span(span: Span | None, attributes: Mapping[str, str] | None = None, *, failed: bool = False) -> None:
    if span is None:
        return
    if span.step is not None:
        try:
            span.step.end(attributes, failed=failed)
        except Exception as exc:
            _observer_failed(span.step, exc)
    if span.otel is None:
        return
    if span.otel.is_recording():
        if attributes:
            span.otel.set_attributes(attributes)
        if failed:
            otel = _otel()
            assert otel is not None
            span.otel.set_status(otel.error)
    span.otel.end()


def _span(otel_span: trace.Span | None, step: Step | None) -> Span | None:
    return Span(otel_span, step) if otel_span is not None or step is not None else None


def _started(observer: StepObserver | None, name: str, attributes: Mapping[str, str] | None) -> Step | None:
    """The observer's new step; None without an observer, or when it failed (tracing never fails a call)."""
    if observer is None:
        return None
    try:
        return observer.start(name, attributes)
    except Exception as exc:
        _observer_failed(observer, exc)
        return None


def _observer_failed(observer: StepObserver, exc: Exception) -> None:
    # The type only: an observer's exception may quote what it was given.
    logger.warning("step observer %s failed: %s", type(observer).__name__, type(exc).__name__)


class Stage:
    """`with Stage(parent, "cosa_guard.judge"):` a child span over one step of a call (`start_child`)."""

    __slots__ = ("_span",)

    def __init__(self, parent: Span | None, name: str) -> None:
        self._span = start_child(parent, name)

    def __enter__(self) -> Stage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        attributes = {"error.type": exc_type.__name__} if exc_type is not None else None
        end_span(self._span, attributes, failed=exc_type is not None)
