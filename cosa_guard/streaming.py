"""Judged streaming: which generated text may reach the caller, and when.

Modes (per deployment, `stream.mode`):

- `buffer`: nothing is released until the verdict on the whole answer.
- `holdback`: every `window_chars` new characters the text so far is judged; after a complying
  verdict on a prefix of length n, text up to n - `overlap_chars` is released. The overlap keeps
  back a tail whose meaning may still change with the next characters. The rest is released only
  after the verdict on the whole answer.
- `optimistic`: text is released as it arrives and judged every `window_chars` and at the end;
  on a violation the stream stops and its decision tells the caller to retract what it showed. Text
  a judge would flag CAN reach the caller in this mode.
- `passthrough` (internal): the CoSAlign route without defence-in-depth judging.

Guarantee in `buffer` and `holdback`: a character is released only after a complying verdict on a
prefix that extends at least `overlap_chars` past it (the whole answer for the tail), so text a
judge flags within that horizon never reaches the caller. Every await is bounded by the call's
deadline. `guard_stream` yields the released text, then one `StreamEnd`: the decision and what
the pipeline needs to record it.

The guard's own stream (`Guard.stream`) is `TextDelta`s, then one `FinalEvent` with the decision.
`StreamFold` reads it for a caller: the released text as it comes, then a `StreamedAnswer` that
says what to show last (nothing, the refusal, or the refusal in place of a retracted answer).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

from cosa_guard.errors import IncompleteStreamError
from cosa_guard.failures import backend_failure_kind, describe
from cosa_guard.types import (
    Chunk,
    Decision,
    FailureKind,
    FinalEvent,
    GuardResponse,
    StreamEvent,
    TextDelta,
)

Check = Callable[[str, bool], Awaitable[Decision]]
"""`check(text, final)`: the decision on the answer so far (`final`: complete). Raises if the judge fails."""

MODES = ("buffer", "holdback", "optimistic", "passthrough")


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item `guard_stream` yields: how the judged stream ended."""

    text: str  # everything the backend produced
    released: int  # how many characters of `text` reached the caller
    decision: Decision
    backend_done: bool  # the backend finished its answer (a later failure is the judge's)
    error: BaseException | None = None  # what ended the stream: for the breaker and the detail log only


async def _verdict(
    check: Check, text: str, final: bool, deadline: float, fail_open: bool
) -> tuple[Decision, BaseException | None]:
    """The check's decision, or the failure (allowed and flagged when the deployment fails open)."""
    try:
        async with asyncio.timeout_at(deadline) as timer:
            return await check(text, final), None
    except Exception as exc:
        kind, detail = _failure(exc, timer, "judging")
        return (Decision.allowed(detail, fail_open=True) if fail_open else Decision.failed(kind, detail)), exc


def _failure(exc: BaseException, timer: asyncio.Timeout, stage: str) -> tuple[FailureKind, str]:
    """The kind and a fixed detail: the exception's text may quote unjudged text, so it stays out."""
    if timer.expired():
        return FailureKind.TIMEOUT, f"deadline passed while {stage}"
    kind = backend_failure_kind(exc) if stage == "generating" else FailureKind.JUDGE
    return kind, f"{stage}: {describe(exc)}"


async def guard_stream(
    chunks: AsyncIterator[Chunk],
    *,
    mode: str,
    check: Check | None,
    deadline: float,
    window_chars: int = 200,
    overlap_chars: int = 64,
    fail_open: bool = False,
) -> AsyncGenerator[TextDelta | StreamEnd, None]:
    """Yield the text the mode allows, then one `StreamEnd` (unless the consumer stops first)."""
    if mode not in MODES:
        raise ValueError(f"unknown stream mode {mode!r}; use one of {MODES}")
    judging = mode != "passthrough" and check is not None
    eager = not judging or mode == "optimistic"  # release text as it arrives
    window = window_chars if mode in ("holdback", "optimistic") else math.inf
    text = ""
    released = judged = 0
    backend_done = False
    error: BaseException | None = None
    opened: Decision | None = None  # the flagged decision once judging failed open

    def release(upto: int) -> TextDelta:
        nonlocal released
        piece = text[released:upto]
        released = max(released, upto)
        return TextDelta(piece)

    def end(decision: Decision) -> StreamEnd:
        return StreamEnd(text, released, decision, backend_done, error)

    while True:
        try:
            async with asyncio.timeout_at(deadline) as timer:
                chunk = await anext(chunks)
        except StopAsyncIteration:
            backend_done = True
            break
        except Exception as exc:
            error = exc
            yield end(Decision.failed(*_failure(exc, timer, "generating")))
            return
        if not chunk.text:
            continue
        text += chunk.text
        if eager:
            yield release(len(text))
        if judging and len(text) - judged >= window:
            assert check is not None
            decision, error = await _verdict(check, text, False, deadline, fail_open)
            if decision.fail_open:  # the rest goes out unjudged, flagged
                opened, judging, eager = decision, False, True
                if released < len(text):
                    yield release(len(text))
                continue
            if not decision.is_allowed:
                yield end(decision)
                return
            judged = len(text)
            if not eager and judged - overlap_chars > released:
                yield release(judged - overlap_chars)

    if judging:
        assert check is not None
        decision, error = await _verdict(check, text, True, deadline, fail_open)
    else:
        decision = opened or Decision.allowed()
    if decision.is_allowed and released < len(text):
        yield release(len(text))
    yield end(decision)


@dataclass(frozen=True, slots=True)
class StreamedAnswer:
    """A guarded stream, folded: the model text the caller was shown, and the call's decision."""

    released: str  # every `TextDelta` joined: model text the caller has shown
    response: GuardResponse  # the decision; `text` is what the caller ends with

    @property
    def retracted(self) -> bool:
        """Text was shown and the call did not end allowed: the caller must drop it."""
        return bool(self.released) and not self.response.decision.is_allowed

    @property
    def closing(self) -> str:
        """What the caller shows after `released`: nothing when the answer stands, else the refusal
        text (in place of `released` when `retracted`)."""
        return "" if self.response.decision.is_allowed else self.response.text


class StreamFold:
    """Reads a guard stream for a caller: its released text as it comes, then the folded answer.

        fold = StreamFold(guard.stream(deployment_id, messages))
        async with aclosing(fold):
            async for text in fold.texts():   # model text the caller may show now
                ...
        answer = fold.answer()                 # StreamedAnswer; IncompleteStreamError without a decision

    Closing the fold closes the stream: the guard stops generating and records the call as cancelled.
    """

    __slots__ = ("_events", "_released", "_response", "_texts")

    def __init__(self, events: AsyncGenerator[StreamEvent, None]) -> None:
        self._events = events
        self._released: list[str] = []
        self._response: GuardResponse | None = None
        self._texts = self._read()

    def texts(self) -> AsyncGenerator[str, None]:
        """The released model text, piece by piece; ends at the decision."""
        return self._texts

    async def _read(self) -> AsyncGenerator[str, None]:
        async for event in self._events:
            if isinstance(event, FinalEvent):
                self._response = event.response
                return
            if event.text:
                self._released.append(event.text)
                yield event.text

    def answer(self) -> StreamedAnswer:
        if self._response is None:
            raise IncompleteStreamError("the guarded stream ended without a decision")
        return StreamedAnswer("".join(self._released), self._response)

    async def aclose(self) -> None:
        await self._texts.aclose()
        await self._events.aclose()


async def fold_stream(events: AsyncGenerator[StreamEvent, None]) -> StreamedAnswer:
    """Read a whole guard stream (closing it) and fold it into a `StreamedAnswer`."""
    fold = StreamFold(events)
    async with aclosing(fold):
        async for _ in fold.texts():
            pass
    return fold.answer()
