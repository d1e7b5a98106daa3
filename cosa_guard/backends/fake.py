"""A scripted backend for tests and benchmarks: replies, delays and failures on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from cosa_guard.errors import BackendError
from cosa_guard.types import Chunk, Completion, GenerationParams, Message

Reply = str | BaseException | Callable[[Sequence[Message]], str]


class ScriptedBackend:
    """Answers from a script: each item is a reply text, an exception to raise, or a function of the messages.

    The script cycles. `delay` sleeps before answering (a hang when large); `chunk_size` splits
    streamed replies. `calls` records every message list it saw, so tests can check what the
    model was sent (for example, that the system prompt is the rendered config).
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
        return Completion(text=self._reply(messages), model=self.name)

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Chunk]:
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self._reply(messages)
        for start in range(0, len(text), self.chunk_size):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield Chunk(text[start : start + self.chunk_size])
        yield Chunk("", finish_reason="stop")


class FailingBackend(ScriptedBackend):
    """Always raises BackendError: a model server that is down."""

    def __init__(self, message: str = "backend is down", *, name: str = "failing") -> None:
        super().__init__([BackendError(message)], name=name)
