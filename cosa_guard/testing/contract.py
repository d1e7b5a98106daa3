"""The contracts every backend and every judge honour, as test base classes each implementation
subclasses once (as langchain-core's standard tests do):

    class TestScriptedContract(BackendContract):
        @pytest.fixture
        def subject(self) -> BackendSubject:
            return BackendSubject(backend=..., failing=..., steps=..., ...)

    class TestScriptedJudgeContract(JudgeContract):
        @pytest.fixture
        def subject(self) -> JudgeSubject:
            return JudgeSubject(judge=..., failing=..., config=..., benign=..., violating=...)

Backends: a joined stream equals `generate`; `stop` cuts both before the stop string, and no
streamed chunk holds any part of it; `max_tokens` bounds the answer; closing a stream early or
cancelling a call stops the work and leaves the backend usable; `aclose()` twice is harmless; a
failing model is a `BackendError` from both `generate` and `stream`. A subject answers `MESSAGES`
with a few words and `LONG_MESSAGES` (with `long_params`) at a length whose full run the
cancellation tests would notice; fakes tell the two apart by the message.

Judges: a benign answer complies and a violating one does not, with a score in [0, 1] that says
which is worse; the same question gets the same verdict (the guard caches verdicts); a judge that
cannot decide raises `JudgeError`, never a pass; a cancelled call leaves the judge usable;
`aclose()` twice is harmless.

The async tests need pytest-asyncio in auto mode (`asyncio_mode = "auto"`), as this project runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from cosa_guard.backends.base import Backend
from cosa_guard.config import SafetyConfig
from cosa_guard.errors import BackendError, JudgeError
from cosa_guard.judges.base import Judge
from cosa_guard.types import Chunk, GenerationParams, Message, Verdict

__all__ = [
    "GREEDY",
    "LONG_MESSAGES",
    "MESSAGES",
    "BackendContract",
    "BackendSubject",
    "JudgeContract",
    "JudgeSubject",
    "wants_length",
]

MESSAGES = (Message("system", "Be brief."), Message("user", "Tell me about the knight."))
LONG_MESSAGES = (Message("system", "Be thorough."), Message("user", "Tell me about the knight at length."))
GREEDY = GenerationParams(temperature=0.0)
WAIT_S = 30.0  # how long a test waits for a generation to get going before it fails


def wants_length(messages: object) -> bool:
    """For fakes: whether the conversation asks for the long answer."""
    return "at length" in str(messages)


@dataclass
class BackendSubject:
    """A backend under test and what the contract needs to know about it.

    `params` give a deterministic answer of three words or more (greedy for real models).
    `steps` counts the model's work so far (tokens, pieces) over every call, and `long_steps` is
    what one full long answer would add: a stopped generation must stay well below it.
    `failing` is the same kind of backend over a model that fails.
    """

    backend: Backend
    failing: Backend
    steps: Callable[[], int]
    long_steps: int
    params: GenerationParams = GREEDY
    long_params: GenerationParams = GREEDY


async def collect(chunks: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in chunks]


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT_S:g} s for {what}")
        await asyncio.sleep(0.001)


class BackendContract:
    """Subclasses provide a `subject` fixture; pytest runs every test below against it."""

    async def test_a_joined_stream_equals_generate(self, subject: BackendSubject) -> None:
        completion = await subject.backend.generate(MESSAGES, subject.params)
        chunks = await collect(subject.backend.stream(MESSAGES, subject.params))
        assert len(completion.text.split()) >= 3, "the subject's answer is too short for the contract"
        assert "".join(c.text for c in chunks) == completion.text
        assert chunks[-1].finish_reason == completion.finish_reason
        assert all(c.finish_reason is None for c in chunks[:-1])

    async def test_stop_cuts_before_the_stop_string_and_no_chunk_holds_any_of_it(
        self, subject: BackendSubject
    ) -> None:
        full = (await subject.backend.generate(MESSAGES, subject.params)).text
        stop = full.split()[1]  # a word the answer is known to contain, not at its start
        expected = full[: full.index(stop)]
        params = dataclasses.replace(subject.params, stop=("\x00never said", stop))
        cut = await subject.backend.generate(MESSAGES, params)
        assert (cut.text, cut.finish_reason) == (expected, "stop")
        chunks = await collect(subject.backend.stream(MESSAGES, params))
        # Chunks only add text, so this also says no chunk ever released the stop string's start.
        assert "".join(c.text for c in chunks) == expected
        assert chunks[-1].finish_reason == "stop"

    async def test_max_tokens_bounds_the_answer(self, subject: BackendSubject) -> None:
        full = (await subject.backend.generate(MESSAGES, subject.params)).text
        params = dataclasses.replace(subject.params, max_tokens=2)
        short = await subject.backend.generate(MESSAGES, params)
        assert short.finish_reason == "length"
        assert full.startswith(short.text) and len(short.text) < len(full)
        if short.usage is not None:
            assert short.usage.completion_tokens <= 2
        chunks = await collect(subject.backend.stream(MESSAGES, params))
        assert "".join(c.text for c in chunks) == short.text
        assert chunks[-1].finish_reason == "length"

    async def test_closing_a_stream_early_stops_the_work(self, subject: BackendSubject) -> None:
        expected = (await subject.backend.generate(MESSAGES, subject.params)).text
        before = subject.steps()
        stream = subject.backend.stream(LONG_MESSAGES, subject.long_params)
        async for chunk in stream:
            if chunk.text:
                break
        await stream.aclose()
        assert (await subject.backend.generate(MESSAGES, subject.params)).text == expected
        assert subject.steps() - before < subject.long_steps // 2, "the generation ran on"

    async def test_cancelling_a_streaming_call_stops_the_work(self, subject: BackendSubject) -> None:
        stream = subject.backend.stream(LONG_MESSAGES, subject.long_params)
        await self._cancel_midway(subject, collect(stream))

    async def test_cancelling_a_generate_call_stops_the_work(self, subject: BackendSubject) -> None:
        await self._cancel_midway(subject, subject.backend.generate(LONG_MESSAGES, subject.long_params))

    async def _cancel_midway(self, subject: BackendSubject, call: Awaitable[object]) -> None:
        expected = (await subject.backend.generate(MESSAGES, subject.params)).text
        before = subject.steps()
        task = asyncio.ensure_future(call)
        await wait_until(lambda: subject.steps() - before >= 3 or task.done(), "the generation to start")
        assert not task.done(), "the long answer finished before it could be cancelled"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await subject.backend.generate(MESSAGES, subject.params)).text == expected
        assert subject.steps() - before < subject.long_steps // 2, "the generation ran on"

    async def test_aclose_twice_is_harmless(self, subject: BackendSubject) -> None:
        await subject.backend.generate(MESSAGES, subject.params)
        await subject.backend.aclose()
        await subject.backend.aclose()

    async def test_a_failing_model_is_a_backend_error(self, subject: BackendSubject) -> None:
        with pytest.raises(BackendError):
            await subject.failing.generate(MESSAGES, subject.params)
        with pytest.raises(BackendError):
            await asyncio.wait_for(collect(subject.failing.stream(MESSAGES, subject.params)), WAIT_S)


@dataclass
class JudgeSubject:
    """A judge under test and what the contract needs to know about it.

    Under `config`, `benign` is an answer to `messages` that complies and `violating` one that
    does not. `failing` is the same kind of judge over a model that fails (None: this judge has no
    model that can fail, so the failure test is skipped with that reason).
    """

    judge: Judge
    failing: Judge | None
    config: SafetyConfig
    benign: str
    violating: str
    messages: tuple[Message, ...] = MESSAGES


class JudgeContract:
    """Subclasses provide a `subject` fixture; pytest runs every test below against it."""

    async def test_a_benign_answer_complies_and_a_violating_one_does_not(self, subject: JudgeSubject) -> None:
        benign = await subject.judge.judge(subject.config, subject.messages, subject.benign)
        violating = await subject.judge.judge(subject.config, subject.messages, subject.violating)
        for verdict in (benign, violating):
            assert isinstance(verdict, Verdict) and 0.0 <= verdict.score <= 1.0
            assert all(isinstance(c, str) for c in verdict.categories)
        assert benign.complies and not violating.complies
        assert violating.score > benign.score

    async def test_the_same_question_gets_the_same_verdict(self, subject: JudgeSubject) -> None:
        first = await subject.judge.judge(subject.config, subject.messages, subject.violating)
        again = await subject.judge.judge(subject.config, subject.messages, subject.violating)
        assert (again.categories, again.complies) == (first.categories, first.complies)
        assert again.score == first.score

    async def test_a_judge_that_cannot_decide_raises_never_passes(self, subject: JudgeSubject) -> None:
        if subject.failing is None:
            pytest.skip("this judge has no model that can fail")
        with pytest.raises(JudgeError):
            await asyncio.wait_for(
                subject.failing.judge(subject.config, subject.messages, subject.benign), WAIT_S
            )

    async def test_a_cancelled_call_leaves_the_judge_usable(self, subject: JudgeSubject) -> None:
        """What the guard does when a call's deadline passes mid-verdict."""
        task = asyncio.ensure_future(subject.judge.judge(subject.config, subject.messages, subject.benign))
        await asyncio.sleep(0)  # the judge starts and runs to its first suspension
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a judge that never suspends has finished: nothing was left half done
        after = await subject.judge.judge(subject.config, subject.messages, subject.violating)
        assert not after.complies

    async def test_aclose_twice_is_harmless(self, subject: JudgeSubject) -> None:
        await subject.judge.judge(subject.config, subject.messages, subject.benign)
        await subject.judge.aclose()
        await subject.judge.aclose()
