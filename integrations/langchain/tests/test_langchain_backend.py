"""LangChainBackend over langchain-core's fake chat models: conversion, params, tool calls, failures."""

from __future__ import annotations

import asyncio
import re
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest

pytest.importorskip("langchain_core")

from cosa_guard_langchain.langchain_backend import LangChainBackend, to_langchain
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda

from cosa_guard.backends.base import Backend
from cosa_guard.backends.factory import build_backend
from cosa_guard.errors import BackendError, DeploymentError
from cosa_guard.langchain_messages import from_langchain, message_text
from cosa_guard.settings import BackendSpec
from cosa_guard.testing.contract import BackendContract, BackendSubject, wants_length
from cosa_guard.types import Chunk, GenerationParams, Message

MESSAGES = (
    Message("system", "Be brief."),
    Message("user", "Capital of France?", name="ann"),
    Message("assistant", "Paris."),
    Message("tool", "42", tool_call_id="call-1"),
)


class RecordingModel(GenericFakeChatModel):
    """Records the messages and keyword arguments of every call."""

    seen: list[tuple[list[BaseMessage], dict[str, Any]]] = []  # noqa: RUF012 - pydantic field, copied per instance

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append((messages, {"stop": stop, **kwargs}))
        return super()._generate(messages, stop, run_manager, **kwargs)


class BrokenModel(GenericFakeChatModel):
    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise RuntimeError("provider is down")

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content="partial "))
        raise RuntimeError("connection reset")


class ToolStreamingModel(GenericFakeChatModel):
    """Streams a tool call as two argument fragments, the way providers do."""

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        first = {"name": "weather", "args": '{"city": ', "id": "t1", "index": 0}
        rest = {"name": None, "args": '"Paris"}', "id": None, "index": 0}
        for piece in (first, rest):
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[piece]))


class WordModel(BaseChatModel):
    """A chat model over a word-per-token fake that honours `max_tokens` and, like many, ignores `stop`.

    It produces one token per event-loop turn (`steps` counts them) and streams three characters
    a chunk; `fail` makes every call raise, as a provider that is down.
    """

    SHORT: ClassVar[str] = "The knight rode out at dawn and came back by night."
    LONG: ClassVar[str] = "and the knight rode on " * 5000
    steps: int = 0
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "word-model"

    async def _words(self, messages: list[BaseMessage], max_tokens: int | None) -> AsyncIterator[str]:
        if self.fail:
            raise RuntimeError("provider is down")
        words = re.findall(r"\s*\S+", self.LONG if wants_length(messages) else self.SHORT)
        for word in words[:max_tokens]:
            await asyncio.sleep(0)
            self.steps += 1
            yield word

    def _finish(self, messages: list[BaseMessage], max_tokens: int | None) -> str:
        words = len((self.LONG if wants_length(messages) else self.SHORT).split())
        return "length" if max_tokens is not None and words > max_tokens else "stop"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join([w async for w in self._words(messages, max_tokens)])
        info = {"finish_reason": self._finish(messages, max_tokens)}
        message = AIMessage(content=text, response_metadata=info)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for word in self._words(messages, max_tokens):
            for start in range(0, len(word), 3):
                yield ChatGenerationChunk(message=AIMessageChunk(content=word[start : start + 3]))
        info = {"finish_reason": self._finish(messages, max_tokens)}
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=info))


class TestLangChainContract(BackendContract):
    @pytest.fixture
    def subject(self) -> BackendSubject:
        model = WordModel()
        return BackendSubject(
            backend=LangChainBackend(model),
            failing=LangChainBackend(WordModel(fail=True)),
            steps=lambda: model.steps,
            long_steps=len(WordModel.LONG.split()),
        )


async def test_a_stop_string_the_model_ignored_is_cut_from_rendered_tool_calls_too() -> None:
    params = GenerationParams(stop=("Paris",))
    expected = 'tool_call: weather {"city": "'
    call = {"name": "weather", "args": {"city": "Paris"}, "id": "t1"}
    whole = GenericFakeChatModel(messages=iter([AIMessage(content="", tool_calls=[call])]))
    completion = await LangChainBackend(whole).generate(MESSAGES, params)
    assert (completion.text, completion.finish_reason) == (expected, "stop")
    streaming = LangChainBackend(ToolStreamingModel(messages=iter([])))
    chunks = [c async for c in streaming.stream(MESSAGES, params)]
    assert [(c.text, c.finish_reason) for c in chunks] == [(expected, None), ("", "stop")]


def test_is_a_backend_and_named_after_the_model() -> None:
    backend = LangChainBackend(FakeListChatModel(responses=["x"]))
    assert isinstance(backend, Backend)
    assert backend.name == "langchain:fake-list-chat-model"
    assert LangChainBackend(FakeListChatModel(responses=["x"]), name="mine").name == "mine"


async def test_generate_converts_messages_and_passes_only_set_params() -> None:
    model = RecordingModel(messages=iter(["Paris."]), seen=[])
    completion = await LangChainBackend(model).generate(
        MESSAGES, GenerationParams(temperature=0.2, stop=("\n",), extra={"top_k": 5})
    )
    assert completion.text == "Paris."
    assert completion.finish_reason == "stop"
    [(sent, kwargs)] = model.seen
    assert [m.type for m in sent] == ["system", "human", "ai", "tool"]
    assert sent[1].name == "ann"
    assert isinstance(sent[3], ToolMessage) and sent[3].tool_call_id == "call-1"
    assert kwargs == {"stop": ["\n"], "temperature": 0.2, "top_k": 5}
    assert GenerationParams.from_kwargs(**kwargs) == GenerationParams(
        temperature=0.2, stop=("\n",), extra={"top_k": 5}
    )


async def test_stream_yields_text_then_a_finish_chunk() -> None:
    backend = LangChainBackend(GenericFakeChatModel(messages=iter(["one two three"])))
    chunks = [c async for c in backend.stream(MESSAGES, GenerationParams())]
    assert "".join(c.text for c in chunks) == "one two three"
    assert len(chunks) > 2
    assert chunks[-1] == Chunk("", finish_reason="stop")
    assert all(type(c.text) is str for c in chunks)


async def test_tool_calls_are_rendered_for_the_judge() -> None:
    call = {"name": "transfer", "args": {"to": "mallory", "amount": 900}, "id": "c1"}
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Sending.", tool_calls=[call])]))
    completion = await LangChainBackend(model).generate(MESSAGES, GenerationParams())
    assert completion.text == 'Sending.\ntool_call: transfer {"amount": 900, "to": "mallory"}'
    assert completion.finish_reason == "tool_calls"


async def test_streamed_tool_call_fragments_are_joined_before_release() -> None:
    backend = LangChainBackend(ToolStreamingModel(messages=iter([])))
    chunks = [c async for c in backend.stream(MESSAGES, GenerationParams())]
    assert [c.text for c in chunks] == ['tool_call: weather {"city": "Paris"}', ""]
    assert chunks[-1].finish_reason == "tool_calls"


async def test_model_failures_become_backend_errors() -> None:
    backend = LangChainBackend(BrokenModel(messages=iter([])))
    with pytest.raises(BackendError, match="provider is down"):
        await backend.generate(MESSAGES, GenerationParams())
    released = []
    with pytest.raises(BackendError, match="connection reset"):
        async for chunk in backend.stream(MESSAGES, GenerationParams()):
            released.append(chunk.text)
    assert released == ["partial "]


class ProviderStatusError(Exception):
    """What provider SDKs raise for an HTTP error (openai.APIStatusError and friends carry `status_code`)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@pytest.mark.parametrize(("status", "upstream_fault"), [(400, False), (422, False), (500, True), (429, True)])
async def test_provider_statuses_say_whose_fault_a_failure_is(status: int, upstream_fault: bool) -> None:
    class Rejecting(GenericFakeChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise ProviderStatusError(status)

    with pytest.raises(BackendError) as info:
        await LangChainBackend(Rejecting(messages=iter([]))).generate(MESSAGES, GenerationParams())
    assert info.value.upstream_fault is upstream_fault
    assert getattr(info.value, "status", None) == status


async def test_a_model_that_returns_no_message_is_a_backend_error() -> None:
    class TextModel(GenericFakeChatModel):
        async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
            return "not a message"

    with pytest.raises(BackendError, match="expected an AIMessage"):
        await LangChainBackend(TextModel(messages=iter([]))).generate(MESSAGES, GenerationParams())


def test_round_trip_keeps_roles_names_and_tool_ids() -> None:
    assert from_langchain(to_langchain(MESSAGES)) == MESSAGES


def test_from_langchain_reads_content_parts_and_treats_unknown_roles_as_user() -> None:
    from langchain_core.messages import ChatMessage

    messages = [
        HumanMessage(
            content=[{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]
        ),
        ChatMessage(role="developer", content="rules"),
        ChatMessage(role="narrator", content="once upon"),
    ]
    assert from_langchain(messages) == (
        Message("user", "a"),
        Message("system", "rules"),
        Message("user", "once upon"),
    )


def test_message_text_without_content_is_only_the_calls() -> None:
    message = AIMessage(content="", tool_calls=[{"name": "f", "args": {}, "id": "1"}])
    assert message_text(message) == "tool_call: f {}"


@pytest.mark.parametrize("streamed", [False, True])
async def test_stream_consumers_of_an_enclosing_run_never_see_the_models_tokens(streamed: bool) -> None:
    # The guard may be called from inside a LangChain run that feeds astream_events to a client:
    # the model's tokens are unjudged, so they must not reach it.
    backend = LangChainBackend(GenericFakeChatModel(messages=iter(["raw unjudged tokens"])))

    async def call_the_backend(_: object) -> str:
        if streamed:
            return "".join([c.text async for c in backend.stream(MESSAGES, GenerationParams())])
        return (await backend.generate(MESSAGES, GenerationParams())).text

    events = [e async for e in RunnableLambda(call_the_backend).astream_events("go", version="v2")]
    assert events[-1]["data"]["output"] == "raw unjudged tokens"
    assert not [e for e in events if e["event"].startswith("on_chat_model")]


# --- `kind: langchain` in a deployments file ---


class EchoChatModel:
    """Stands in for a LangChain chat model class; records how it was built."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs

    async def ainvoke(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError


def test_kind_langchain_imports_and_builds_the_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the core factory: the kind reaches this package by its `cosa_guard.backends` entry point.
    module = types.ModuleType("my_models")
    module.Chat = EchoChatModel  # type: ignore[attr-defined]
    module.ready = EchoChatModel(model="prebuilt")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_models", module)

    spec = BackendSpec(
        kind="langchain", model="gpt-x", options={"import": "my_models:Chat", "kwargs": {"temperature": 0}}
    )
    backend = build_backend(spec)
    assert backend.chat_model.kwargs == {"temperature": 0, "model": "gpt-x"}  # type: ignore[attr-defined]
    prebuilt = build_backend(
        BackendSpec(kind="langchain", options={"import": "my_models:ready", "name": "lc"})
    )
    assert prebuilt.chat_model is module.ready  # type: ignore[attr-defined]
    assert prebuilt.name == "lc"


@pytest.mark.parametrize(
    ("options", "message"),
    [({}, "options.import"), ({"import": "no_such_module_xyz:Chat"}, "cannot import")],
)
def test_kind_langchain_spec_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        build_backend(BackendSpec(kind="langchain", options=options))
