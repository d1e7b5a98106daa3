"""Judged streaming: which generated text may reach the caller, and when.

Modes (per deployment, `stream.mode`):

- `buffer`: nothing is released until the verdict on the whole answer.
- `holdback`: every `window_chars` new characters the text so far is judged; after a complying
  verdict on a prefix of length n, text up to n - `overlap_chars` is released. The overlap keeps
  back a tail whose meaning may still change with the next characters. The rest is released only
  after the verdict on the whole answer.
- `optimistic`: text is released as it arrives and judged every `window_chars` and at the end;
  on a violation the stream stops and the guard tells the caller to retract what it showed. Text
  a judge would flag CAN reach the caller in this mode.
- `passthrough` (internal): the CoSAlign route without defence-in-depth judging.

Guarantee in `buffer` and `holdback`: a character is released only after a complying verdict on a
prefix that extends at least `overlap_chars` past it (the whole answer for the tail), so text a
judge flags within that horizon never reaches the caller. Every await is bounded by the call's
deadline. This module only yields released text; the guard adds the refusal or retraction
events from the `StreamOutcome`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from cosa_guard.backends.base import Backend
from cosa_guard.failures import backend_failure_kind, describe
from cosa_guard.types import Chunk, Decision, FailureKind, GenerationParams, Message, TextDelta

Check = Callable[[str, bool], Awaitable[Decision]]
"""`check(text, final)`: the decision on the answer so far (`final`: complete). Raises if the judge fails."""

MODES = ("buffer", "holdback", "optimistic", "passthrough")


@dataclass(slots=True)
class StreamOutcome:
    """Filled in while the stream runs; read by the guard once it ends."""

    text: str = ""  # everything the backend produced
    released: int = 0  # how many characters of `text` reached the caller
    decision: Decision | None = None
    first_chunk_s: float | None = None
    backend_done: bool = False  # the backend finished its answer (a later failure is the judge's)
    fail_open: bool = False
    error: BaseException | None = None  # what ended the stream: for the breaker and the detail log only


async def backend_chunks(
    backend: Backend, messages: Sequence[Message], params: GenerationParams
) -> AsyncGenerator[Chunk, None]:
    """The backend's stream; its `generate` as a single chunk when it cannot stream."""
    stream = getattr(backend, "stream", None)
    if stream is None:
        yield Chunk((await backend.generate(messages, params)).text, finish_reason="stop")
        return
    source: AsyncIterator[Chunk] = stream(messages, params)
    try:
        try:
            first = await anext(source)
        except NotImplementedError:
            yield Chunk((await backend.generate(messages, params)).text, finish_reason="stop")
            return
        except StopAsyncIteration:
            return
        yield first
        async for chunk in source:
            yield chunk
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _failure(exc: BaseException, timer: asyncio.Timeout, stage: str) -> tuple[FailureKind, str]:
    """The kind and a fixed detail: the exception's text may quote unjudged text, so it stays out."""
    if timer.expired():
        return FailureKind.TIMEOUT, f"deadline passed while {stage}"
    kind = backend_failure_kind(exc) if stage == "generating" else FailureKind.JUDGE
    return kind, f"{stage}: {describe(exc)}"


async def guard_stream(
    chunks: AsyncIterator[Chunk],
    outcome: StreamOutcome,
    *,
    mode: str,
    check: Check | None,
    deadline: float,
    window_chars: int = 200,
    overlap_chars: int = 64,
    fail_open: bool = False,
) -> AsyncGenerator[TextDelta, None]:
    """Yield the text the mode allows; leave the decision in `outcome.decision` (always set at the end)."""
    if mode not in MODES:
        raise ValueError(f"unknown stream mode {mode!r}; use one of {MODES}")
    judging = mode != "passthrough" and check is not None
    eager = not judging or mode == "optimistic"  # release text as it arrives
    window = window_chars if mode in ("holdback", "optimistic") else math.inf
    loop = asyncio.get_running_loop()
    started = loop.time()
    text = ""
    judged = 0

    async def verdict(final: bool) -> Decision | None:
        """The check's decision; None after a judge failure (the outcome then says what happened)."""
        assert check is not None
        try:
            async with asyncio.timeout_at(deadline) as timer:
                return await check(text, final)
        except Exception as exc:
            outcome.error = exc
            kind, detail = _failure(exc, timer, "judging")
            if fail_open:
                outcome.fail_open = True
                outcome.decision = Decision.allowed(detail, fail_open=True)
            else:
                outcome.decision = Decision.failed(kind, detail)
            return None

    def release(upto: int) -> str:
        piece = text[outcome.released : upto]
        outcome.released = max(outcome.released, upto)
        return piece

    while True:
        try:
            async with asyncio.timeout_at(deadline) as timer:
                chunk = await anext(chunks)
        except StopAsyncIteration:
            outcome.backend_done = True
            break
        except Exception as exc:
            outcome.error = exc
            outcome.decision = Decision.failed(*_failure(exc, timer, "generating"))
            return
        if outcome.first_chunk_s is None:
            outcome.first_chunk_s = loop.time() - started
        if not chunk.text:
            continue
        text += chunk.text
        outcome.text = text
        if eager:
            yield TextDelta(release(len(text)))
        if judging and len(text) - judged >= window:
            decision = await verdict(False)
            if decision is None:
                if not fail_open:
                    return
                judging, eager = False, True  # fail-open: the rest goes out unjudged, flagged
                if outcome.released < len(text):
                    yield TextDelta(release(len(text)))
                continue
            if not decision.is_allowed:
                outcome.decision = decision
                return
            judged = len(text)
            if not eager and judged - overlap_chars > outcome.released:
                yield TextDelta(release(judged - overlap_chars))

    if judging:
        decision = await verdict(True)
        if decision is None and not fail_open:
            return
        if decision is not None:
            outcome.decision = decision
            if not decision.is_allowed:
                return
    elif outcome.decision is None:
        outcome.decision = Decision.allowed()
    if outcome.released < len(text):
        yield TextDelta(release(len(text)))
