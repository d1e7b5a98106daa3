"""Any LangChain chat model (a langchain-core `BaseChatModel`, or a binding of one) as a backend.

    from langchain_openai import ChatOpenAI
    backend = LangChainBackend(ChatOpenAI(model="gpt-4o-mini"))
    guard = Guard.single(deployment, fallback=backend)

`GenerationParams` become call keyword arguments (`stop=`, then `max_tokens`, `temperature`,
`top_p`, `seed` and `extra`), the same thing `model.bind(...)` would carry; only the values that
are set are passed, so a model that ignores an option is not sent it. Tool calls the model makes
are rendered into the completion text (`tool_call: name {json args}`) so the judge sees what the
model wants to *do*, not only what it says. Any exception from the model becomes a `BackendError`
and the guard fails closed on it. Not every chat model honours `stop`, so the backend cuts at a
stop string itself (the rendered tool calls included), holding back a streamed piece's end while it
could start one (`_stops.StopBuffer`).

The model runs without the callback handlers that forward tokens to clients (`astream_events`,
`astream_log`, LangGraph's messages stream) even when the guard is called from inside a LangChain
run: its tokens are unjudged, and only the guard may release text. Tracers still see the run.

langchain-core is imported lazily (extra `langchain`); `import cosa_guard` never loads it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from cosa_guard._optional import require
from cosa_guard.backends._stops import StopBuffer, cut_completion
from cosa_guard.backends.base import Backend
from cosa_guard.errors import BackendError, CosaGuardError, status_error
from cosa_guard.types import ROLES, Chunk, Completion, GenerationParams, Message, Usage

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.runnables import Runnable, RunnableConfig

__all__ = [
    "LangChainBackend",
    "completion_of",
    "detached_first_step",
    "detached_streams",
    "from_langchain",
    "join_chunks",
    "message_text",
    "to_langchain",
    "without_stream_consumers",
]

_EXTRA = "langchain"
# LangChain message types onto cosa_guard roles; anything unknown counts as a user turn, so the
# input guard scans it rather than trusting it.
_ROLE_OF_TYPE = {
    "system": "system",
    "developer": "system",
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
}


def _messages_module() -> Any:
    return require("langchain_core.messages", _EXTRA, "the LangChain backend")


def to_langchain(messages: Sequence[Message]) -> list[BaseMessage]:
    """cosa_guard messages as LangChain messages (system, human, AI, tool)."""
    lc = _messages_module()
    out: list[BaseMessage] = []
    for m in messages:
        if m.role == "system":
            out.append(lc.SystemMessage(content=m.content))
        elif m.role == "assistant":
            out.append(lc.AIMessage(content=m.content, name=m.name))
        elif m.role == "tool":
            out.append(lc.ToolMessage(content=m.content, tool_call_id=m.tool_call_id or "", name=m.name))
        else:
            out.append(lc.HumanMessage(content=m.content, name=m.name))
    return out


def message_text(message: BaseMessage) -> str:
    """The text a judge should read: the content's text parts, then one line per tool call."""
    text = str(message.text)
    calls = [
        f"tool_call: {call['name']} {json.dumps(call.get('args', {}), ensure_ascii=False, sort_keys=True)}"
        for call in getattr(message, "tool_calls", None) or ()
    ]
    return "\n".join([text, *calls] if text else calls)


def from_langchain(messages: Sequence[BaseMessage]) -> tuple[Message, ...]:
    """LangChain messages as cosa_guard messages; tool calls of AI turns kept as text (`message_text`)."""
    out = []
    for message in messages:
        role = _ROLE_OF_TYPE.get(message.type)
        if message.type == "chat":  # ChatMessage carries a free-form role
            custom = str(getattr(message, "role", "user"))
            role = "system" if custom == "developer" else custom if custom in ROLES else "user"
        out.append(
            Message(
                role=role or "user",  # type: ignore[arg-type]
                content=message_text(message),
                name=message.name,
                tool_call_id=getattr(message, "tool_call_id", None),
            )
        )
    return tuple(out)


def completion_of(message: BaseMessage, default_model: str) -> Completion:
    metadata: Mapping[str, Any] = message.response_metadata or {}
    usage = getattr(message, "usage_metadata", None)
    finish = metadata.get("finish_reason") or (
        "tool_calls" if getattr(message, "tool_calls", None) else "stop"
    )
    return Completion(
        text=message_text(message),
        model=str(metadata.get("model_name") or default_model),
        finish_reason=str(finish),
        usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))) if usage else None,
    )


def _default_name(model: Any) -> str:
    while hasattr(model, "bound"):  # RunnableBinding (bind_tools, bind): name the model underneath
        model = model.bound
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"langchain:{value}"
    llm_type = getattr(model, "_llm_type", None)
    return f"langchain:{llm_type or type(model).__name__}"


class LangChainBackend(Backend):
    """A backend over a LangChain chat model's `ainvoke` / `astream`.

    `config` is the RunnableConfig passed on every call (callbacks, tags, metadata).
    """

    def __init__(
        self, chat_model: Runnable[Any, Any], *, name: str | None = None, config: RunnableConfig | None = None
    ):
        _messages_module()  # fail at construction, naming the extra, rather than on the first call
        self.chat_model = chat_model
        self.name = name or _default_name(chat_model)
        self.config = config

    async def aclose(self) -> None:
        """Nothing to release: the chat model owns its clients, and may be shared beyond this backend."""

    async def invoke_messages(self, messages: list[BaseMessage], params: GenerationParams) -> AIMessage:
        """One call with LangChain messages; subclasses redirect it (see cosa_guard_langchain)."""
        with detached_streams():
            result = await self.chat_model.ainvoke(messages, self.config, **params.to_kwargs())
        return _as_ai_message(result, self.name)

    def stream_messages(self, messages: list[BaseMessage], params: GenerationParams) -> AsyncIterator[Any]:
        """A streamed call with LangChain messages: AIMessageChunks."""
        return detached_first_step(self.chat_model.astream(messages, self.config, **params.to_kwargs()))

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        try:
            message = await self.invoke_messages(to_langchain(messages), params)
        except (CosaGuardError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise _backend_error(self.name, exc) from exc
        return cut_completion(completion_of(message, self.name), params.stop)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]:
        pieces: list[AIMessageChunk] = []
        stops = StopBuffer(params.stop)
        source = self.stream_messages(to_langchain(messages), params)
        try:
            async for piece in source:
                chunk = _as_chunk(piece, self.name)
                pieces.append(chunk)
                if released := stops.feed(str(chunk.text)):
                    yield Chunk(released)
                if stops.stopped:
                    yield Chunk("", finish_reason="stop")
                    return
        except (CosaGuardError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise _backend_error(self.name, exc) from exc
        finally:
            await _aclose(source)  # leaving early (a stop string, a reader gone) ends the model's stream
        total = join_chunks(pieces)
        if total is None:
            raise BackendError(f"{self.name}: the stream ended without a single chunk")
        # Tool calls arrive as argument fragments; only the joined message parses them, so they are
        # released (to the judge) as one last piece of text.
        calls = message_text(total)[len(total.text) :]
        if released := stops.feed(calls) + stops.flush():
            yield Chunk(released)
        finish = "stop" if stops.stopped else completion_of(total, self.name).finish_reason
        yield Chunk("", finish_reason=finish)


def join_chunks(chunks: Sequence[AIMessageChunk]) -> AIMessageChunk | None:
    """The streamed message as one chunk, joined in one pass (chunk by chunk is quadratic)."""
    if not chunks:
        return None
    return chunks[0] + list(chunks[1:]) if len(chunks) > 1 else chunks[0]


def is_stream_consumer(handler: Any) -> bool:
    """Whether a callback handler forwards tokens to a client (tracers do not).

    langchain-core's streaming protocol (`tap_output_aiter`: `astream_events`, `astream_log`,
    LangGraph's messages stream) and its v2 event marker class.
    """
    return hasattr(handler, "tap_output_aiter") or any(
        c.__name__ == "_V2StreamingCallbackHandler" for c in type(handler).__mro__
    )


def without_stream_consumers(callbacks: Any) -> Any:
    """A copy of `callbacks` (a callback manager or a list of handlers) without its stream consumers."""
    base = require("langchain_core.callbacks.base", _EXTRA, "the LangChain backend")
    if isinstance(callbacks, base.BaseCallbackManager):
        manager = callbacks.copy()
        for handler in [*manager.handlers, *manager.inheritable_handlers]:
            if is_stream_consumer(handler):
                manager.remove_handler(handler)
        return manager
    if isinstance(callbacks, list):
        return [h for h in callbacks if not is_stream_consumer(h)]
    return []


@contextmanager
def detached_streams(callbacks: Any = None) -> Iterator[None]:
    """Inside: model runs get `callbacks` (None: the ambient run's) minus every stream consumer.

    LangChain reads a run's callbacks from a context variable and *adds* explicit ones to them, so
    only replacing that variable keeps an ambient stream consumer away from the model. Restored
    by value, not by token: the block may span the yields of an async generator.
    """
    config_module = require("langchain_core.runnables.config", _EXTRA, "the LangChain backend")
    variable = config_module.var_child_runnable_config
    previous = variable.get()
    config: dict[str, Any] = dict(previous or {})
    config["callbacks"] = without_stream_consumers(
        callbacks if callbacks is not None else config.get("callbacks")
    )
    variable.set(config)
    try:
        yield
    finally:
        variable.set(previous)


async def detached_first_step(chunks: AsyncIterator[Any], callbacks: Any = None) -> AsyncIterator[Any]:
    """`chunks` (a model's `astream`), its first step run under `detached_streams(callbacks)`.

    A model reads its run config when its stream starts; detaching only for that step leaves the
    caller's context as it was while the stream waits between chunks.
    """
    iterator = aiter(chunks)
    with detached_streams(callbacks):
        first = await anext(iterator, None)
    if first is None:
        return
    yield first
    async for chunk in iterator:
        yield chunk


def _as_ai_message(result: Any, name: str) -> AIMessage:
    lc = _messages_module()
    if not isinstance(result, lc.AIMessage):
        raise BackendError(f"{name}: expected an AIMessage from the chat model, got {type(result).__name__}")
    return cast("AIMessage", result)


def _as_chunk(piece: Any, name: str) -> AIMessageChunk:
    lc = _messages_module()
    if not isinstance(piece, lc.AIMessageChunk):
        raise BackendError(
            f"{name}: expected AIMessageChunks from the chat model, got {type(piece).__name__}"
        )
    return cast("AIMessageChunk", piece)


async def _aclose(source: AsyncIterator[Any]) -> None:
    aclose = getattr(source, "aclose", None)  # an async generator; a subclass may return any iterator
    if aclose is not None:
        await aclose()


def _backend_error(name: str, exc: Exception) -> BackendError:
    message = f"{name}: {type(exc).__name__}: {exc}"
    status = getattr(exc, "status_code", None)  # the provider SDKs' HTTP errors (openai, anthropic, ...)
    return (
        status_error(message, status) if isinstance(status, int) and status >= 400 else BackendError(message)
    )
