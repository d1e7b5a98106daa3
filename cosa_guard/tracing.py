"""OpenTelemetry spans for guarded calls, when opentelemetry-api is installed (the `otel` extra).

The API is imported at the first span, not with `cosa_guard`, and spans go to whatever tracer
provider the application configured; without an SDK the API's no-op tracer makes them nearly free.
Spans are started with an explicit parent instead of being made current: a streamed call's span
lives across the caller's iterations, where an attached context could not be detached safely.
Attributes carry identifiers and labels only, never prompt, answer or config text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Status, Tracer

__all__ = ["Stage", "end_span", "start_child", "start_span"]


@dataclass(frozen=True, slots=True)
class _Otel:
    tracer: Tracer
    in_context: Callable[[Span], Context]
    error: Status  # without a description: an exception's text may quote the prompt


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


def start_span(
    name: str, parent: Span | None = None, attributes: Mapping[str, str] | None = None
) -> Span | None:
    """A started span (a child of `parent`, else of the current context), or None without the API."""
    otel = _otel()
    if otel is None:
        return None
    context = otel.in_context(parent) if parent is not None else None
    return otel.tracer.start_span(name, context=context, attributes=attributes)


def start_child(parent: Span | None, name: str) -> Span | None:
    """A child span of `parent`; None when the parent does not record (no SDK, or sampled out), as
    its children would not either."""
    return start_span(name, parent) if parent is not None and parent.is_recording() else None


def end_span(span: Span | None, attributes: Mapping[str, str] | None = None, *, failed: bool = False) -> None:
    if span is None:
        return
    if span.is_recording():
        if attributes:
            span.set_attributes(attributes)
        if failed:
            otel = _otel()
            assert otel is not None
            span.set_status(otel.error)
    span.end()


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
