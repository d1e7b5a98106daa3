"""OpenTelemetry spans of guarded calls, recorded by the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from _guard_fixtures import MARKER, REFUSAL, USER, config, make_guard

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from cosa_guard.backends.base import Backend
from cosa_guard.backends.fake import FailingBackend, ScriptedBackend
from cosa_guard.tracing import observe
from cosa_guard.types import Chunk, Completion, FinalEvent, GenerationParams, Message, TextDelta

ANSWER = "The hero swings the sword and the dragon falls."
CHILDREN = {"cosa_guard.input_scan", "cosa_guard.generate", "cosa_guard.judge"}


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: reuse one another test module set.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # processors cannot be removed
    yield exporter
    exporter.shutdown()  # so later modules' spans are dropped, not kept


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def assert_no_text(exporter: InMemorySpanExporter) -> None:
    texts = [USER[0]["content"], ANSWER, f"{ANSWER} {MARKER}", REFUSAL, config().text]
    for span in exporter.get_finished_spans():
        for value in (span.attributes or {}).values():
            assert not any(isinstance(value, str) and t in value for t in texts), value


def assert_children_of(parent: ReadableSpan, children: list[ReadableSpan]) -> None:
    assert parent.context is not None
    for child in children:
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
        assert child.context is not None and child.context.trace_id == parent.context.trace_id


async def test_a_chat_is_one_span_with_its_steps_as_children(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    response = await guard.chat("game", USER)
    named = by_name(spans)
    assert set(named) == {"cosa_guard.chat", *CHILDREN}
    (call,) = named["cosa_guard.chat"]
    assert dict(call.attributes or {}) == {
        "cosa_guard.deployment": "game",
        "cosa_guard.config_hash": response.config_hash,
        "cosa_guard.request_id": response.request_id,
        "cosa_guard.route": "cascade",
        "cosa_guard.decision": "allowed",
        "cosa_guard.categories": "",  # judged, and nothing found
    }
    assert_children_of(call, [s for name in CHILDREN for s in named[name]])
    assert_no_text(spans)


async def test_a_refusal_is_the_decision_attribute(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([f"{ANSWER} {MARKER}"], name="fallback")})
    response = await guard.chat("game", USER)
    assert response.decision.label == "refused:output_violation"
    (call,) = by_name(spans)["cosa_guard.chat"]
    assert (call.attributes or {})["cosa_guard.decision"] == "refused:output_violation"
    assert response.categories  # the judged categories close the call span, as labels
    assert (call.attributes or {})["cosa_guard.categories"] == ",".join(sorted(response.categories))
    assert_no_text(spans)


async def test_a_failed_step_is_an_error_span_without_its_message(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    guard = make_guard(tmp_path, {"fallback": FailingBackend("down: " + ANSWER, name="fallback")})
    response = await guard.chat("game", USER)
    named = by_name(spans)
    (generate,) = named["cosa_guard.generate"]
    assert generate.status.status_code is StatusCode.ERROR and not generate.status.description
    assert (generate.attributes or {})["error.type"] == "BackendError"
    assert (named["cosa_guard.chat"][0].attributes or {})["cosa_guard.decision"] == response.decision.label
    assert response.decision.label == "failed:backend"
    assert not any(s.events for s in spans.get_finished_spans())  # no exception event with its text
    assert_no_text(spans)


async def test_the_call_span_is_a_child_of_the_callers_span(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    with trace.get_tracer("app").start_as_current_span("app.request"):
        await guard.chat("game", USER)
    named = by_name(spans)
    assert_children_of(named["app.request"][0], named["cosa_guard.chat"])


async def test_a_stream_is_one_span_with_its_steps_as_children(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    events = [event async for event in guard.stream("game", USER)]
    final = events[-1]
    assert isinstance(final, FinalEvent)
    named = by_name(spans)
    assert set(named) == {"cosa_guard.stream", *CHILDREN}
    (call,) = named["cosa_guard.stream"]
    attributes = call.attributes or {}
    assert attributes["cosa_guard.request_id"] == final.response.request_id
    assert attributes["cosa_guard.decision"] == "allowed"
    assert attributes["cosa_guard.route"] == "cascade"
    assert_children_of(call, [s for name in CHILDREN for s in named[name]])
    assert_no_text(spans)


async def test_a_stream_the_caller_leaves_ends_its_spans_as_cancelled(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    class Endless(Backend):
        name = "endless"

        async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
            raise AssertionError("not used")

        async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Chunk]:
            while True:
                await asyncio.sleep(0)
                yield Chunk("more text ")

    guard = make_guard(tmp_path, {"fallback": Endless()}, stream={"mode": "optimistic"})  # type: ignore[dict-item]
    events = guard.stream("game", USER)
    assert isinstance(await anext(events), TextDelta)
    await events.aclose()
    named = by_name(spans)
    (call,) = named["cosa_guard.stream"]
    assert (call.attributes or {})["cosa_guard.decision"] == "cancelled"
    assert_children_of(call, named["cosa_guard.generate"])


async def test_spans_and_an_observers_steps_together(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    class Names:
        def __init__(self) -> None:
            self.started: list[str] = []

        def start(self, name: str, attributes: Mapping[str, str] | None) -> Names:
            self.started.append(name)
            return self

        def end(self, attributes: Mapping[str, str] | None, *, failed: bool) -> None:
            pass

    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    names = Names()
    with observe(names):
        await guard.chat("game", USER)
    named = by_name(spans)
    assert sorted(names.started) == sorted(named)
    assert_children_of(named["cosa_guard.chat"][0], [s for name in CHILDREN for s in named[name]])
