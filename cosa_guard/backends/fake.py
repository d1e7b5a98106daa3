"""A scripted backend for tests and benchmarks: replies, delays and failures on demand."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence

from cosa_guard.backends._stops import StopBuffer, cut_completion
from cosa_guard.backends.base import Backend
from cosa_guard.errors import BackendError
from cosa_guard.types import Chunk, Completion, GenerationParams, Message

Reply = str | BaseException | Callable[[Sequence[Message]], str]

_TOKEN = re.compile(r"\s*\S+")  # a "token" of the fake: a word with the whitespace before it


class ScriptedBackend(Backend):
    """Answers from a script: each item is a reply text, an exception to raise, or a function of the messages.

    The script cycles. `delay` sleeps before answering (a hang when large); `chunk_size` splits
    streamed replies into pieces of that many characters and `chunk_delay` paces the stream (not
    `generate`, which answers at once). `calls` records every message list it saw, so tests can
    check what the model was sent (for example, that the system prompt is the rendered config);
    `steps` counts the streamed pieces produced, so tests can see how far a stream ran.

    It honours the backend contract (`cosa_guard.testing.contract`) like a real model: `max_tokens`
    counts words (a reply cut there ends with finish_reason `length`), `stop` cuts the reply
    before the stop string and holds back a streamed piece's end while it could start one
    (finish_reason `stop`), and `stream` joins to what `generate` returns. A scripted exception
    is raised as it is, whatever its type: the script plays the backend, not the model.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = ("ok",),
        *,
        name: str = "scripted",
        delay: float = 0.0,
        chunk_size: int = 8,
        chunk_delay: float = 0.0,
    ) -> None:
        self.replies = list(replies)
        if not self.replies:
            raise ValueError("ScriptedBackend needs at least one reply")
        self.name = name
        self.delay = delay
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.calls: list[tuple[Message, ...]] = []
        self.steps = 0
        self._next = 0

    def _reply(self, messages: Sequence[Message]) -> str:
        self.calls.append(tuple(messages))
        item = self.replies[self._next % len(self.replies)]
        self._next += 1
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            return item(messages)
        return item

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        if self.delay:
            await asyncio.sleep(self.delay)
        text, finish = _at_most(self._reply(messages), params.max_tokens)
        return cut_completion(Completion(text=text, model=self.name, finish_reason=finish), params.stop)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]:
        if self.delay:
            await asyncio.sleep(self.delay)
        text, finish = _at_most(self._reply(messages), params.max_tokens)
        stops = StopBuffer(params.stop)
        for start in range(0, len(text), self.chunk_size):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            self.steps += 1
            if released := stops.feed(text[start : start + self.chunk_size]):
                yield Chunk(released)
            if stops.stopped:
                yield Chunk("", finish_reason="stop")
                return
        if held := stops.flush():
            yield Chunk(held)
        yield Chunk("", finish_reason=finish)


def _at_most(text: str, max_tokens: int | None) -> tuple[str, str]:
    """`text` cut after `max_tokens` words, and the finish reason a model would give."""
    if max_tokens is None:
        return text, "stop"
    words = _TOKEN.findall(text)
    if len(words) <= max_tokens:
        return text, "stop"
    return "".join(words[:max_tokens]), "length"


class FailingBackend(ScriptedBackend):
    """Always raises BackendError: a model server that is down."""

    def __init__(self, message: str = "backend is down", *, name: str = "failing") -> None:
        super().__init__([BackendError(message)], name=name)
