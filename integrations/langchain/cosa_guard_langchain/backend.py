"""How a guard's model call reaches the LangChain model of the call being guarded.

A `Guard` is built once, with its backends; a LangChain app calls many variants of one model
(`bind_tools`, `with_structured_output`, an agent's per-step request). `ChatModelBackend` sits in
the guard's route and, during a guarded call, runs whatever that call names in a context
variable (`ModelCall`): the tool-bound runnable, or an agent middleware's `handler`. It records
the message the model produced, so the guarded answer keeps its tool calls, ids and usage when
the guard allows it.

    backend = ChatModelBackend(model)       # runs `model` (or a binding of it) for its calls
    slot = ChatModelBackend()                # runs the model of whichever guarded call is current

The inner model runs without the callback handlers that consume streams (`astream_events`,
LangGraph's `stream_mode="messages"`), so its raw, unjudged tokens never reach a streaming
client; tracers (LangSmith) still see the inner run, nested under the guarded one. Under a
`GuardedChatModel` only tracers see it: any other handler would get its tokens too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from cosa_guard.errors import BackendError
from cosa_guard.langchain_messages import from_langchain
from cosa_guard.types import GenerationParams
from cosa_guard_langchain.langchain_backend import (
    LangChainBackend,
    detached_first_step,
    detached_streams,
    join_chunks,
)

__all__ = [
    "ChatModelBackend",
    "ModelCall",
    "current_call",
    "restore_messages",
    "use_call",
    "whole_chunk",
]

Invoke = Callable[[list[BaseMessage], dict[str, Any]], Awaitable[AIMessage]]
Stream = Callable[[list[BaseMessage], dict[str, Any]], AsyncIterator[AIMessageChunk]]

_CALL: ContextVar[ModelCall | None] = ContextVar("cosa_guard_langchain_call", default=None)


@dataclass(eq=False)
class ModelCall:
    """One guarded call's model: what to run, the app's own messages, and what the model produced.

    `model` is the chat model the call is for: a `ChatModelBackend(model)` takes only calls for its
    own model, a slot (`ChatModelBackend()`) takes any. `result` is the last message the model
    produced during the call (joined, when streamed).
    """

    model: Any | None
    invoke: Invoke
    stream: Stream
    originals: Sequence[BaseMessage] = ()
    callbacks: Any = None  # the callbacks the model run nests under; None: the ambient run's
    result: AIMessage | None = None


def current_call() -> ModelCall | None:
    return _CALL.get()


class use_call:
    """`with use_call(call): ...` makes `call` the current one; restores the previous one after.

    Restores by value, not by token: the block may span the yields of an async generator, which
    can resume in another context where a token would not be valid.
    """

    def __init__(self, call: ModelCall | None) -> None:
        self.call = call
        self._previous: ModelCall | None = None

    def __enter__(self) -> ModelCall | None:
        self._previous = _CALL.get()
        _CALL.set(self.call)
        return self.call

    def __exit__(self, *exc: object) -> None:
        _CALL.set(self._previous)


class ChatModelBackend(LangChainBackend):
    """A `LangChainBackend` whose model is chosen per guarded call (see the module docstring)."""

    def __init__(self, model: Any | None = None, *, name: str | None = None) -> None:
        # A slot has no model of its own: `_call` routes each of its calls or fails loudly.
        super().__init__(
            cast("Any", model), name=name or (None if model is not None else "langchain:app-model")
        )
        self.model = model

    def _call(self) -> ModelCall | None:
        call = _CALL.get()
        if call is not None and (self.model is None or call.model is self.model):
            return call
        if self.model is None:
            raise BackendError(
                f"{self.name}: no LangChain model is bound to this call; call the guard through "
                "GuardedChatModel, guard_chain or CosaGuardMiddleware, or give ChatModelBackend a model"
            )
        return None

    async def invoke_messages(self, messages: list[BaseMessage], params: GenerationParams) -> AIMessage:
        call = self._call()
        if call is None:
            return await super().invoke_messages(messages, params)
        with detached_streams(call.callbacks):
            message = await call.invoke(restore_messages(messages, call.originals), params.to_kwargs())
        call.result = message
        return message

    def stream_messages(self, messages: list[BaseMessage], params: GenerationParams) -> AsyncIterator[Any]:
        call = self._call()
        if call is None:
            return super().stream_messages(messages, params)
        chunks = call.stream(restore_messages(messages, call.originals), params.to_kwargs())
        return _recorded(call, detached_first_step(chunks, call.callbacks))


async def _recorded(call: ModelCall, chunks: AsyncIterator[AIMessageChunk]) -> AsyncIterator[AIMessageChunk]:
    pieces: list[AIMessageChunk] = []
    async for chunk in chunks:
        pieces.append(chunk)
        yield chunk
    call.result = join_chunks(pieces)


def restore_messages(sent: list[BaseMessage], originals: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The guard's messages, with the app's own message objects wherever the guard kept a turn as it was.

    The guard works on text; tool calls, content parts and message ids live on the app's objects,
    and a provider rejects a tool result whose assistant turn lost its tool calls. A turn is
    restored when its role and text match the next unused original of that role; system turns
    (the guard's rendered config) and turns the guard rewrote (sanitised) pass as the guard sent them.
    """
    pool = [(m, o) for m, o in zip(from_langchain(originals), originals, strict=True) if m.role != "system"]
    out: list[BaseMessage] = []
    start = 0
    for mine, message in zip(from_langchain(sent), sent, strict=True):
        match = None
        if mine.role != "system":
            match = next((i for i in range(start, len(pool)) if pool[i][0] == mine), None)
        if match is None:
            out.append(message)
        else:
            out.append(pool[match][1])
            start = match + 1
    return out


def whole_chunk(message: BaseMessage) -> AIMessageChunk:
    """A finished message as one last stream chunk, its tool calls as complete argument strings."""
    calls = getattr(message, "tool_calls", None) or []
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            {
                "name": c["name"],
                "args": json.dumps(c["args"], ensure_ascii=False),
                "id": c.get("id"),
                "index": i,
            }
            for i, c in enumerate(calls)
        ],
        usage_metadata=getattr(message, "usage_metadata", None),
        response_metadata=message.response_metadata,
        id=message.id,
        chunk_position="last",
    )
