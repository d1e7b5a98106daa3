"""ScriptedBackend, the fake every guard test uses, honours the backend contract like a real model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cosa_guard.backends.fake import FailingBackend, ScriptedBackend
from cosa_guard.errors import BackendError
from cosa_guard.testing.contract import BackendContract, BackendSubject, wants_length
from cosa_guard.types import GenerationParams, Message

SHORT = "The knight rode out at dawn and came back by night."
LONG = "and the knight rode on " * 5000
CHUNK = 4


def reply(messages: Sequence[Message]) -> str:
    return LONG if wants_length(messages) else SHORT


class TestScriptedContract(BackendContract):
    @pytest.fixture
    def subject(self) -> BackendSubject:
        # chunk_delay paces the stream as a model's tokens would, so a task reading it can be cancelled.
        backend = ScriptedBackend([reply], chunk_size=CHUNK, chunk_delay=0.0005)
        return BackendSubject(
            backend=backend,
            failing=FailingBackend("model down"),
            steps=lambda: backend.steps,
            long_steps=len(LONG) // CHUNK,
        )

    async def test_cancelling_a_generate_call_stops_the_work(self, subject: BackendSubject) -> None:
        pytest.skip("ScriptedBackend.generate answers at once (only `delay` suspends it): nothing runs on")


async def test_max_tokens_counts_words() -> None:
    backend = ScriptedBackend([SHORT])
    out = await backend.generate([], GenerationParams(max_tokens=3))
    assert (out.text, out.finish_reason) == ("The knight rode", "length")
    whole = await backend.generate([], GenerationParams(max_tokens=11))
    assert (whole.text, whole.finish_reason) == (SHORT, "stop")


async def test_a_scripted_exception_is_raised_as_it_is() -> None:
    backend = ScriptedBackend([RuntimeError("a bug in a backend"), BackendError("down")])
    with pytest.raises(RuntimeError):
        await backend.generate([], GenerationParams())
    with pytest.raises(BackendError):
        await backend.generate([], GenerationParams())
