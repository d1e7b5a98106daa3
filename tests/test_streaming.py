"""Guard.stream: every mode, leak tests on randomized streams, failures and disconnects."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from _guard_fixtures import BOTH_ROUTES, MARKER, PRIMARY_ONLY, REFUSAL, USER, make_guard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cosa_guard.audit import MemoryAuditSink
from cosa_guard.backends.base import Backend
from cosa_guard.backends.fake import FailingBackend, ScriptedBackend
from cosa_guard.errors import BackendError, IncompleteStreamError, JudgeError, UnknownDeploymentError
from cosa_guard.guard import Guard
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.streaming import StreamedAnswer, StreamEnd, StreamFold, fold_stream, guard_stream
from cosa_guard.types import (
    Chunk,
    Completion,
    Decision,
    FinalEvent,
    GenerationParams,
    Message,
    RefusalReason,
    Route,
    StreamEvent,
    TextDelta,
    Verdict,
)

SAFE = "The knight rides out at dawn, and the battle for the valley begins in earnest. " * 3


async def collect(events: AsyncIterator[StreamEvent]) -> tuple[str, list[StreamEvent], StreamedAnswer]:
    """The released model text, every event, and the stream folded (what the caller shows last)."""
    seen = [e async for e in events]
    final = seen[-1]
    assert isinstance(final, FinalEvent)
    assert all(isinstance(e, TextDelta) for e in seen[:-1])  # one decision, and it comes last
    released = "".join(e.text for e in seen if isinstance(e, TextDelta))
    return released, seen, StreamedAnswer(released, final.response)


def stream_guard(tmp_path: Path, reply: str, mode: str, **kw: object) -> Guard:
    backend = ScriptedBackend([reply], name="fallback", chunk_size=int(kw.pop("chunk_size", 7)))  # type: ignore[call-overload]
    stream = {
        "mode": mode,
        "window_chars": kw.pop("window_chars", 20),
        "overlap_chars": kw.pop("overlap_chars", 10),
    }
    return make_guard(tmp_path, {"fallback": backend}, stream=stream, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["buffer", "holdback", "optimistic"])
async def test_complying_stream_releases_the_whole_answer(tmp_path: Path, mode: str) -> None:
    released, events, final = await collect(stream_guard(tmp_path, SAFE, mode).stream("game", USER))
    assert released == SAFE
    assert final.response.decision.is_allowed and final.response.text == SAFE
    assert not final.retracted and final.closing == ""
    if mode != "buffer":
        assert sum(isinstance(e, TextDelta) for e in events) > 1  # released progressively


async def test_buffer_releases_nothing_before_the_verdict(tmp_path: Path) -> None:
    released, events, final = await collect(
        stream_guard(tmp_path, SAFE + MARKER, "buffer").stream("game", USER)
    )
    assert released == "" and final.closing == REFUSAL and not final.retracted
    assert [type(e) for e in events] == [FinalEvent]
    assert final.response.decision.label == "refused:output_violation"


@pytest.mark.parametrize("mode", ["buffer", "holdback"])
async def test_leak_randomized_no_violating_character_is_ever_released(tmp_path: Path, mode: str) -> None:
    rng = random.Random(1234)
    for trial in range(120):
        body = "".join(rng.choice("abcdefgh ijklmnop.") for _ in range(rng.randint(0, 400)))
        position = rng.randint(0, len(body))
        text = body[:position] + MARKER + body[position:]
        guard = stream_guard(
            tmp_path / str(trial),
            text,
            mode,
            chunk_size=rng.randint(1, 30),
            window_chars=rng.randint(1, 60),
            overlap_chars=rng.randint(len(MARKER), 40),
        )
        model_text, _, final = await collect(guard.stream("game", USER))
        assert text.startswith(model_text), trial  # only a prefix of the answer, in order
        assert len(model_text) <= position, (trial, len(model_text), position)  # nothing from the marker on
        assert final.response.decision.label == "refused:output_violation"
        assert final.response.text == REFUSAL
        assert final.retracted == bool(model_text) and final.closing == REFUSAL


async def test_holdback_releases_judged_text_then_retracts_on_a_late_violation(tmp_path: Path) -> None:
    text = SAFE + MARKER
    released, _, final = await collect(
        stream_guard(tmp_path, text, "holdback", window_chars=20, overlap_chars=12).stream("game", USER)
    )
    assert released and MARKER not in released
    assert final.retracted and final.closing == REFUSAL
    assert final.response.decision.label == "refused:output_violation"


async def test_optimistic_leaks_then_retracts(tmp_path: Path) -> None:
    text = "start " + MARKER + " " + SAFE
    released, _events, final = await collect(stream_guard(tmp_path, text, "optimistic").stream("game", USER))
    assert MARKER in released  # the documented risk of this mode
    assert final.retracted
    assert final.response.text == REFUSAL
    assert len(released) < len(text)  # the stream stopped at the first violating window


async def test_passthrough_on_the_primary_route(tmp_path: Path) -> None:
    primary = ScriptedBackend([SAFE], name="primary", chunk_size=5)
    judge = ScriptedJudge(flags={MARKER: "weapons"})
    guard = make_guard(tmp_path, {"primary": primary}, judge=judge, routes=PRIMARY_ONLY)
    released, events, final = await collect(guard.stream("game", USER))
    assert released == SAFE and final.response.route is Route.COSALIGN
    assert len([e for e in events if isinstance(e, TextDelta)]) == -(-len(SAFE) // 5)
    assert judge.calls == []


async def test_primary_failing_before_any_text_falls_over_to_the_cascade(tmp_path: Path) -> None:
    primary = FailingBackend(name="primary")
    fallback = ScriptedBackend([SAFE], name="fallback")
    guard = make_guard(tmp_path, {"primary": primary, "fallback": fallback}, routes=BOTH_ROUTES)
    released, _, final = await collect(guard.stream("game", USER))
    assert released == SAFE
    assert final.response.route is Route.CASCADE and final.response.decision.is_allowed


async def test_stream_hang_times_out_without_releasing_unjudged_text(tmp_path: Path) -> None:
    backend = ScriptedBackend([SAFE], name="fallback", chunk_size=10, chunk_delay=0.1)
    guard = make_guard(tmp_path, {"fallback": backend}, stream={"mode": "buffer"}, deadline_s=0.25)
    released, _, final = await collect(guard.stream("game", USER))
    assert final.response.decision.label == "failed:timeout"
    assert released == "" and final.closing == REFUSAL


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_judge_failure_mid_stream(tmp_path: Path, fail_mode: str) -> None:
    guard = make_guard(
        tmp_path,
        {"fallback": ScriptedBackend([SAFE], name="fallback")},
        judge=ScriptedJudge([JudgeError("judge down")]),
        stream={"mode": "holdback"},
        fail_mode=fail_mode,
    )
    released, _, final = await collect(guard.stream("game", USER))
    decision = final.response.decision
    if fail_mode == "closed":
        assert decision.label == "failed:judge" and released == "" and final.closing == REFUSAL
    else:  # only an explicit setting lets unjudged text out, and the decision says so
        assert decision.is_allowed and decision.fail_open and released == SAFE


async def test_unknown_deployment_raises_before_any_event(tmp_path: Path) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([SAFE], name="fallback")})
    with pytest.raises(UnknownDeploymentError):
        guard.stream("nope", USER)


async def test_disconnect_closes_the_backend_stream_and_is_audited(tmp_path: Path) -> None:
    closed = asyncio.Event()

    class Endless(Backend):
        name = "endless"

        async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
            raise AssertionError("not used")

        async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Chunk]:
            try:
                while True:
                    await asyncio.sleep(0)
                    yield Chunk("more text ")
            finally:
                closed.set()

    sink = MemoryAuditSink()
    guard = make_guard(tmp_path, {"fallback": Endless()}, sink=sink, stream={"mode": "optimistic"})  # type: ignore[dict-item]
    events = guard.stream("game", USER)
    first = await anext(events)
    assert isinstance(first, TextDelta)
    await events.aclose()
    assert closed.is_set()
    assert [r.decision for r in sink.records] == ["cancelled"]
    assert sink.records[0].stream


async def test_guard_stream_rejects_an_unknown_mode() -> None:
    async def chunks() -> AsyncIterator[Chunk]:
        yield Chunk("x")

    async def allow(text: str, final: bool) -> Decision:
        return Decision.allowed()

    with pytest.raises(ValueError, match="mode"):
        await anext(guard_stream(chunks(), mode="fast", check=allow, deadline=1e18))


async def test_primary_breaking_after_released_text_retracts_instead_of_falling_over(tmp_path: Path) -> None:
    class Breaks(Backend):
        name = "primary"

        async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
            raise AssertionError("not used")

        async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Chunk]:
            yield Chunk("The first half of an answer")
            raise BackendError("connection reset")

    fallback = ScriptedBackend([SAFE], name="fallback")
    guard = make_guard(tmp_path, {"primary": Breaks(), "fallback": fallback}, routes=BOTH_ROUTES)  # type: ignore[dict-item]
    released, _events, final = await collect(guard.stream("game", USER))
    assert released == "The first half of an answer"
    assert final.retracted and final.response.decision.label == "failed:backend"
    assert final.response.route is Route.COSALIGN and fallback.calls == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.text(alphabet="abc xyz.", max_size=120),
    position=st.one_of(st.none(), st.integers(min_value=0, max_value=120)),
    sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=8),
    window=st.integers(min_value=1, max_value=30),
    extra_overlap=st.integers(min_value=0, max_value=12),
    mode=st.sampled_from(["buffer", "holdback", "holdback", "optimistic", "passthrough"]),
)
@example(body="ab", position=1, sizes=[1], window=1, extra_overlap=0, mode="holdback")
def test_guard_stream_property(
    body: str, position: int | None, sizes: list[int], window: int, extra_overlap: int, mode: str
) -> None:
    """For any chunking, window and overlap: released text is a prefix of the answer, and in buffer and
    holdback it never reaches the first violating character."""
    text = (
        body
        if position is None
        else body[: min(position, len(body))] + MARKER + body[min(position, len(body)) :]
    )
    violation_at = text.find(MARKER)

    async def chunks() -> AsyncIterator[Chunk]:
        start, i = 0, 0
        while start < len(text):
            size = sizes[i % len(sizes)]
            yield Chunk(text[start : start + size])
            start, i = start + size, i + 1

    async def check(prefix: str, final: bool) -> Decision:
        return (
            Decision.allowed() if MARKER not in prefix else Decision.refused(RefusalReason.OUTPUT_VIOLATION)
        )

    async def run() -> tuple[str, StreamEnd]:
        stream = guard_stream(
            chunks(),
            mode=mode,
            check=check,
            deadline=asyncio.get_running_loop().time() + 60,
            window_chars=window,
            overlap_chars=len(MARKER) + extra_overlap,
        )
        steps = [step async for step in stream]
        end = steps.pop()
        assert isinstance(end, StreamEnd) and all(isinstance(step, TextDelta) for step in steps)
        return "".join(step.text for step in steps if isinstance(step, TextDelta)), end

    released, outcome = asyncio.run(run())
    assert text.startswith(released) and outcome.released == len(released)
    if violation_at < 0 or mode == "passthrough":
        assert released == text and outcome.decision.is_allowed
        return
    assert outcome.decision.reason is RefusalReason.OUTPUT_VIOLATION
    if mode in ("buffer", "holdback"):
        assert len(released) <= violation_at


@pytest.mark.slow
async def test_holdback_over_a_real_threaded_model_stream(tmp_path: Path) -> None:
    """A real transformers stream (generation in a worker thread): held back, refused, closed early."""
    pytest.importorskip("torch")
    from cosa_guard.backends.transformers import TransformersBackend
    from cosa_guard.testing.models import tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    backend = TransformersBackend.from_objects(tiny_llama(tokenizer), tokenizer, name="tiny")
    too_long = Verdict(frozenset({"weapons"}), complies=False, score=1.0)
    short_enough = Verdict(frozenset(), complies=True, score=0.0)
    judge = ScriptedJudge([lambda text: too_long if len(text) >= 24 else short_enough])
    guard = make_guard(
        tmp_path,
        {"fallback": backend},
        judge=judge,
        stream={"mode": "holdback", "window_chars": 8, "overlap_chars": 8},
    )
    _, events, final = await collect(guard.stream("game", USER, GenerationParams(max_tokens=48)))
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert final.response.decision.label == "refused:output_violation"
    assert len(shown) < 24 - 8  # only text judged clean, minus the overlap, was ever shown
    assert final.response.model == "tiny"

    events_iter = guard.stream("game", USER, GenerationParams(max_tokens=400))
    await anext(events_iter)
    await asyncio.wait_for(events_iter.aclose(), 5)  # the generation thread is told to stop


async def test_fold_stream_reads_the_decision_from_the_last_event(tmp_path: Path) -> None:
    answer = await fold_stream(stream_guard(tmp_path, SAFE + MARKER, "holdback").stream("game", USER))
    assert answer.released and MARKER not in answer.released
    assert answer.retracted and answer.closing == REFUSAL == answer.response.text
    allowed = await fold_stream(stream_guard(tmp_path / "2", SAFE, "buffer").stream("game", USER))
    assert (allowed.released, allowed.closing, allowed.retracted) == (SAFE, "", False)


async def test_a_stream_without_its_decision_is_an_error_not_an_answer() -> None:
    async def cut_short() -> AsyncIterator[StreamEvent]:
        yield TextDelta("unchecked text")

    fold = StreamFold(cut_short())  # type: ignore[arg-type]
    assert [text async for text in fold.texts()] == ["unchecked text"]
    with pytest.raises(IncompleteStreamError):
        fold.answer()


async def test_closing_a_fold_closes_the_guard_stream(tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    backend = ScriptedBackend([SAFE], name="fallback", chunk_size=5)
    guard = make_guard(tmp_path, {"fallback": backend}, sink=sink, stream={"mode": "optimistic"})
    fold = StreamFold(guard.stream("game", USER))
    assert await anext(fold.texts())
    await fold.aclose()
    assert [r.decision for r in sink.records] == ["cancelled"]
