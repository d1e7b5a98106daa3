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

Deployments files name it as backend kind `langchain` (registered through the
`cosa_guard.backends` entry point, `from_spec`):

    fallback: {kind: langchain, options: {import: "langchain_openai:ChatOpenAI", kwargs: {temperature: 0}}}
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers import BaseTracer
from langchain_core.tracers.context import _configure_hooks

from cosa_guard.backends._stops import StopBuffer, cut_completion
from cosa_guard.backends.base import Backend
from cosa_guard.errors import BackendError, CosaGuardError, DeploymentError, status_error
from cosa_guard.langchain_messages import message_text
from cosa_guard.settings import BackendSpec
from cosa_guard.types import Chunk, Completion, GenerationParams, Message, Usage

__all__ = [
    "LangChainBackend",
    "completion_of",
    "detached_first_step",
    "detached_streams",
    "from_spec",
    "join_chunks",
    "to_langchain",
    "tracers_only",
    "without_stream_consumers",
]


def to_langchain(messages: Sequence[Message]) -> list[BaseMessage]:
    """cosa_guard messages as LangChain messages (system, human, AI, tool)."""
    out: list[BaseMessage] = []
    for m in messages:
        if m.role == "system":
            out.append(SystemMessage(content=m.content))
        elif m.role == "assistant":
            out.append(AIMessage(content=m.content, name=m.name))
        elif m.role == "tool":
            out.append(ToolMessage(content=m.content, tool_call_id=m.tool_call_id or "", name=m.name))
        else:
            out.append(HumanMessage(content=m.content, name=m.name))
    return out


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
    return _keeping(callbacks, lambda handler: not is_stream_consumer(handler))


def tracers_only(callbacks: Any) -> Any:
    """A copy of `callbacks` with only its tracers (`BaseTracer`s that consume no stream: LangSmith's).

    For a model run nested in a guarded chat model's run: the guarded run is the app's model call,
    so handlers that act on model calls (token forwarders, usage counters) see it alone; a nested
    model run would hand them its unjudged tokens and count its usage twice.
    """
    return _keeping(
        callbacks, lambda handler: isinstance(handler, BaseTracer) and not is_stream_consumer(handler)
    )


def _keeping(callbacks: Any, keep: Callable[[Any], bool]) -> Any:
    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        for handler in [*manager.handlers, *manager.inheritable_handlers]:
            if not keep(handler):
                manager.remove_handler(handler)
        return manager
    if isinstance(callbacks, list):
        return [h for h in callbacks if keep(h)]
    return []


@contextmanager
def detached_streams(callbacks: Any = None) -> Iterator[None]:
    """Inside: model runs get `callbacks` (None: the ambient run's) minus every stream consumer.

    LangChain reads a run's callbacks from a context variable and *adds* explicit ones to them, so
    only replacing that variable keeps an ambient stream consumer away from the model. Restored
    by value, not by token: the block may span the yields of an async generator. Given explicit
    `callbacks`, the runs get only those: a handler that a context manager registers
    (`get_usage_metadata_callback`) and that `callbacks` left out is not added back either.
    """
    previous = var_child_runnable_config.get()
    config = RunnableConfig(**(previous or {}))
    config["callbacks"] = without_stream_consumers(
        callbacks if callbacks is not None else config.get("callbacks")
    )
    var_child_runnable_config.set(config)
    hidden = [] if callbacks is None else _hide_hook_handlers(config["callbacks"])
    try:
        yield
    finally:
        var_child_runnable_config.set(previous)
        for var, handler in hidden:
            var.set(handler)


def _hide_hook_handlers(kept: Any) -> list[tuple[ContextVar[Any], Any]]:
    """Unset the context variables of LangChain's configure hooks whose handler `kept` left out.

    Each run's callback manager adds the handler such a variable holds; langchain-core lists the
    variables only in `_configure_hooks` (stable since 0.1, and langchain-core is pinned below 2).
    """
    handlers = kept.handlers if isinstance(kept, BaseCallbackManager) else kept
    hidden = []
    for var, *_ in _configure_hooks:
        handler = var.get()
        if handler is not None and not any(h is handler for h in handlers):
            hidden.append((var, handler))
            var.set(None)
    return hidden


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
    if not isinstance(result, AIMessage):
        raise BackendError(f"{name}: expected an AIMessage from the chat model, got {type(result).__name__}")
    return result


def _as_chunk(piece: Any, name: str) -> AIMessageChunk:
    if not isinstance(piece, AIMessageChunk):
        raise BackendError(
            f"{name}: expected AIMessageChunks from the chat model, got {type(piece).__name__}"
        )
    return piece


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


def from_spec(spec: BackendSpec, base_dir: Path) -> LangChainBackend:
    """The backend of a deployments file's `kind: langchain` spec (the `cosa_guard.backends` entry point).

    `options.import` names a chat model instance, or a class or function that builds one from
    `options.kwargs` (plus `model` when the spec names one); the other options go to the backend.
    """
    options = dict(spec.options)
    target = options.pop("import", None)
    if not isinstance(target, str) or ":" not in target:
        raise DeploymentError(
            "a langchain backend needs options.import = 'module:attribute', naming a chat model "
            "instance or a class/function that builds one (e.g. 'langchain_openai:ChatOpenAI')"
        )
    module_name, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise DeploymentError(f"langchain backend: cannot import {target!r}: {exc}") from exc
    kwargs = dict(options.pop("kwargs", None) or {})
    if spec.model:
        kwargs.setdefault("model", spec.model)
    if not isinstance(obj, type) and hasattr(obj, "ainvoke"):  # a chat model instance (any Runnable)
        return LangChainBackend(obj, **options)
    try:
        chat_model = obj(**kwargs)
    except Exception as exc:  # e.g. a provider's pydantic validation: a missing key or bad setting
        raise DeploymentError(f"langchain backend: {target}(**{sorted(kwargs)}) failed: {exc}") from exc
    return LangChainBackend(chat_model, **options)
