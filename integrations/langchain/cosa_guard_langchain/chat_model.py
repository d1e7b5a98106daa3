"""`GuardedChatModel`: any LangChain chat model behind a deployment's guard, as a drop-in chat model.

    guarded = GuardedChatModel.from_deployments(ChatOpenAI(model="gpt-4o-mini"), "deployments.yaml", "kids")
    chain = prompt | guarded | StrOutputParser()

Every path is guarded: `invoke`, `ainvoke`, `batch`, `abatch`, `stream`, `astream`. The sync ones
run the async guard on a private event loop and the wrapped model through its own sync API (see
`_sync`). The guard's decision, route, config hash and judged categories are in
`message.response_metadata["cosa_guard"]`. A refused call answers with the refusal text, never
with the model's text or tool calls (or raises `GuardRefusalError` with `raise_on_refusal=True`);
a failed one raises `GuardFailedError`.

Streaming follows the deployment's stream mode. In `buffer` and `holdback` only judged text is
released. In `optimistic` text is released at once and, on a violation, the last chunk carries
the refusal and `response_metadata["cosa_guard"]["retracted"] = True`: the caller must discard
what it showed (a failure, or a refusal under `raise_on_refusal`, raises there instead). Calls
that can produce tool calls (tools bound, structured output) are released as one chunk after
the verdict, tool calls included.

Tracing: the guard's steps are child runs of the guarded model's run (see `steps`), next to the
wrapped model's own run, which only tracers (LangSmith) see: other callback handlers (token
forwarders, usage counters) see one model call, the guarded one, with the wrapped model's usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, ensure_config
from pydantic import Field

from cosa_guard.deployments import LoadedDeployment
from cosa_guard.langchain_messages import from_langchain, message_text
from cosa_guard.streaming import StreamedAnswer, StreamFold
from cosa_guard.tracing import observe
from cosa_guard.types import DecisionKind, GenerationParams, GuardResponse
from cosa_guard_langchain._runs import nested_callbacks, pin_run, remember
from cosa_guard_langchain._sync import iterate_in_thread, iterate_sync, run_sync
from cosa_guard_langchain._walk import replace_chat_models
from cosa_guard_langchain.backend import ChatModelBackend, ModelCall, use_call, whole_chunk
from cosa_guard_langchain.errors import raise_for
from cosa_guard_langchain.langchain_backend import tracers_only
from cosa_guard_langchain.steps import RunSteps, run_steps

if TYPE_CHECKING:  # model profiles came with langchain-core 1.1; 1.0 never calls the hook below
    from langchain_core.language_models import ModelProfile

__all__ = ["GuardedChatModel", "guard_metadata", "guarded_message", "keeps_produced"]

# Call options that let a model answer with tool calls: such answers are released whole.
_TOOL_OPTIONS = frozenset({"tools", "functions", "tool_choice", "response_format"})


def guard_metadata(response: GuardResponse) -> dict[str, Any]:
    """What `response_metadata["cosa_guard"]` holds: everything needed to audit or branch on the call."""
    return {
        "decision": response.decision.label,
        "detail": response.decision.detail,
        "allowed": response.decision.is_allowed,
        "route": response.route.value,
        "deployment_id": response.deployment_id,
        "config_hash": response.config_hash,
        "categories": sorted(response.categories),
        "rule": response.rule,
        "rules_reviewed": response.rules_reviewed,
        "request_id": response.request_id,
    }


def keeps_produced(response: GuardResponse, produced: BaseMessage | None) -> bool:
    """Whether the guard allowed exactly the message the model produced (not another route's answer)."""
    return response.decision.is_allowed and produced is not None and message_text(produced) == response.text


def guarded_message(response: GuardResponse, produced: BaseMessage | None) -> AIMessage:
    """The message a guarded call answers with.

    When the guard allowed exactly what the model produced, that message is kept (tool calls, id,
    usage) with the guard's metadata added; otherwise the guard's text (a refusal) stands alone.
    """
    meta: dict[str, Any] = {"cosa_guard": guard_metadata(response)}
    if produced is not None and keeps_produced(response, produced):
        return AIMessage(
            content=produced.content,
            tool_calls=list(getattr(produced, "tool_calls", ())),
            invalid_tool_calls=list(getattr(produced, "invalid_tool_calls", ())),
            usage_metadata=getattr(produced, "usage_metadata", None),
            additional_kwargs=dict(produced.additional_kwargs),
            response_metadata={**produced.response_metadata, **meta},
            id=produced.id,
            name=produced.name,
        )
    if response.decision.kind is DecisionKind.REFUSED:
        meta["finish_reason"] = "content_filter"
    return AIMessage(content=response.text, response_metadata=meta)


class GuardedChatModel(BaseChatModel):
    """A chat model whose every answer went through `guard` for `deployment_id`.

    Build it with `from_deployments` (a signed deployments file and the model to guard) or
    `from_guard` (a `Guard` you built). `model` is the wrapped model: the guard calls it through a
    `ChatModelBackend`, and `bind_tools` / `with_structured_output` are delegated to it. Without a
    `model` the guard's own routes answer and tools cannot be bound.
    """

    model: BaseChatModel | None = None
    guard: Any = Field(exclude=True)
    deployment_id: str
    raise_on_refusal: bool = False
    """Raise `GuardRefusalError` on a refusal instead of answering with the refusal text."""
    bound: Runnable[Any, Any] | None = Field(default=None, exclude=True)
    """What runs for a call in place of `model` (a provider's composite around it); None: `model`."""

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_guard(
        cls,
        guard: Any,
        deployment_id: str,
        *,
        model: BaseChatModel | None = None,
        raise_on_refusal: bool = False,
    ) -> GuardedChatModel:
        """Wrap an existing guard. `model` is run wherever the guard's route is a `ChatModelBackend`."""
        return cls(guard=guard, deployment_id=deployment_id, model=model, raise_on_refusal=raise_on_refusal)

    @classmethod
    def from_deployments(
        cls,
        model: BaseChatModel,
        path: str | Path,
        deployment_id: str,
        *,
        route: Literal["cascade", "cosalign"] = "cascade",
        raise_on_refusal: bool = False,
        **guard_options: Any,
    ) -> GuardedChatModel:
        """Guard `model` with deployment `deployment_id` of the signed deployments file at `path`.

        `route` says what `model` is: a general model, judged by the cascade (default), or a
        CoSAlign-trained model that follows the config from its system prompt. `raise_on_refusal`
        makes a refusal raise `GuardRefusalError`. Other keyword arguments (`judge`, `input_guard`,
        `audit`, `metrics`) go to `Guard.single`.
        """
        from cosa_guard.deployments import DeploymentRegistry

        deployment = DeploymentRegistry.load(path).get(deployment_id)
        return cls.for_deployment(
            model, deployment, route=route, raise_on_refusal=raise_on_refusal, **guard_options
        )

    @classmethod
    def for_deployment(
        cls,
        model: BaseChatModel,
        deployment: LoadedDeployment,
        *,
        route: Literal["cascade", "cosalign"] = "cascade",
        raise_on_refusal: bool = False,
        **guard_options: Any,
    ) -> GuardedChatModel:
        """Like `from_deployments`, for a deployment already loaded (one registry, many models)."""
        from cosa_guard.guard import Guard

        backend = ChatModelBackend(model)
        cosalign = route == "cosalign"
        guard = Guard.single(
            deployment,
            primary=backend if cosalign else None,
            fallback=None if cosalign else backend,
            **guard_options,
        )
        return cls(guard=guard, deployment_id=deployment.id, model=model, raise_on_refusal=raise_on_refusal)

    # --- delegation ---------------------------------------------------------------------------

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model's own `bind_tools`, still guarded: the judge sees each tool call's arguments."""
        return self.with_runnable(self._require_model("bind_tools").bind_tools(tools, **kwargs))

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """The wrapped model's own structured output, with its model call guarded.

        A refusal is no instance of the schema, so it raises `GuardRefusalError` rather than reach
        the provider's parser (which would return None, fail to parse, or raise its own refusal
        error, by provider and method). With `include_raw=True` nothing is raised for a refusal:
        `raw` is the refusal message and `parsed` is None.
        """
        model = self._require_model("with_structured_output")
        strict = self if kwargs.get("include_raw") else self.model_copy(update={"raise_on_refusal": True})
        structured = model.with_structured_output(schema, **kwargs)
        guarded, replaced = replace_chat_models(
            structured,
            lambda found, binding: strict.with_runnable(binding or found) if found is model else None,
        )
        if not replaced:  # an implementation that hides its model call: fall back to tool calling
            return super(GuardedChatModel, strict).with_structured_output(schema, **kwargs)
        return guarded

    def _require_model(self, what: str) -> BaseChatModel:
        if self.model is None:
            raise NotImplementedError(
                f"{what} needs the wrapped chat model: build GuardedChatModel with model=... "
                "(from_deployments, or from_guard(..., model=model) over a guard whose route is a "
                "ChatModelBackend)"
            )
        return self.model

    def with_runnable(self, runnable: Runnable[Any, Any]) -> Runnable[LanguageModelInput, Any]:
        """This guarded model running `runnable` (the wrapped model bound to tools or options).

        A binding of the wrapped model (`bind_tools`, `bind`) stays a binding, of this guarded model
        now: its options reach the wrapped model with each call, and code that reads a bound model's
        tools from the binding (LangGraph's `create_react_agent`, LangChain's standard tests) finds
        them; it would otherwise bind them again, dropping options such as `tool_choice`. Anything
        else (a provider's own composite) runs in place of the wrapped model.
        """
        if runnable is self.model:
            return self
        if isinstance(runnable, RunnableBinding) and runnable.bound is self.model:
            return runnable.model_copy(update={"bound": self})
        return self.model_copy(update={"bound": runnable})

    # --- LangChain's model interface ----------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "cosa-guard"

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        inner = getattr(self.model, "_identifying_params", {}) if self.model is not None else {}
        return {"deployment_id": self.deployment_id, "model": dict(inner)}

    @property
    def model_name(self) -> str | None:
        """The wrapped model's name. LangChain code reads a chat model's name from `model_name`,
        else from `model`, which is the wrapped model itself here, no name (`create_agent` picks a
        structured-output strategy by the name, and failed on the model)."""
        if self.model is None:
            return None
        return str(self.model._get_ls_params().get("ls_model_name") or self.model._llm_type)

    def _resolve_model_profile(self) -> ModelProfile | None:
        """The wrapped model's profile (context window, structured output, ...): what it can do."""
        return self.model.profile if self.model is not None else None

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """The wrapped model's tracing params (provider, model name, per-call `model=` override):
        a trace names the model that answered, not the guard."""
        if self.model is None:
            return super()._get_ls_params(stop=stop, **kwargs)
        return self.model._get_ls_params(stop=stop, **kwargs)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        with pin_run(config) as pinned:
            yield from super().stream(input, pinned, stop=stop, **kwargs)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        with pin_run(config) as pinned:
            async for chunk in super().astream(input, pinned, stop=stop, **kwargs):
                yield chunk

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        should = super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)
        if should and run_manager is not None:  # an invoke about to call `_stream` without it
            remember(run_manager)
        return should

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, steps = self._call_and_steps(messages, run_manager, sync=True)
        return run_sync(self._chat(messages, stop, call, kwargs, steps))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, steps = self._call_and_steps(messages, run_manager, sync=False)
        return await self._chat(messages, stop, call, kwargs, steps)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call, steps = self._call_and_steps(messages, run_manager, sync=True)
        yield from iterate_sync(self._chat_stream(messages, stop, call, kwargs, steps))

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call, steps = self._call_and_steps(messages, run_manager, sync=False)
        return self._chat_stream(messages, stop, call, kwargs, steps)

    async def _chat(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        call: ModelCall | None,
        kwargs: dict[str, Any],
        steps: RunSteps | None,
    ) -> ChatResult:
        with use_call(call), observe(steps):
            response = await self.guard.chat(
                self.deployment_id, from_langchain(messages), _params(stop, kwargs)
            )
        raise_for(response, raise_on_refusal=self.raise_on_refusal)
        produced = call.result if call is not None else None
        return ChatResult(generations=[ChatGeneration(message=guarded_message(response, produced))])

    async def _chat_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        call: ModelCall | None,
        kwargs: dict[str, Any],
        steps: RunSteps | None,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        if self.bound is not None or _TOOL_OPTIONS & kwargs.keys():
            # Tool calls arrive as argument fragments and are judged whole: release them whole.
            result = await self._chat(messages, stop, call, kwargs, steps)
            yield ChatGenerationChunk(message=whole_chunk(result.generations[0].message))
            return
        events = self.guard.stream(self.deployment_id, from_langchain(messages), _params(stop, kwargs))
        fold = StreamFold(events)
        # aclosing: a consumer that stops early still gets the guard's audit record written now.
        with use_call(call), observe(steps):
            async with aclosing(fold):
                async for text in fold.texts():
                    yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        answer = fold.answer()  # IncompleteStreamError when the stream ended without a decision
        raise_for(answer.response, raise_on_refusal=self.raise_on_refusal)
        yield ChatGenerationChunk(message=_last_chunk(answer, call.result if call is not None else None))

    def _call_and_steps(
        self, messages: list[BaseMessage], run_manager: Any, *, sync: bool
    ) -> tuple[ModelCall | None, RunSteps | None]:
        """The wrapped model's call and the guard's step observer, both nested under the model run.

        The wrapped model's run is reported to tracers only (`tracers_only`).
        """
        nested = nested_callbacks(run_manager)
        ambient = nested if nested is not None else ensure_config().get("callbacks")
        return self._model_call(messages, tracers_only(ambient), sync=sync), run_steps(nested)

    def _model_call(self, messages: list[BaseMessage], callbacks: Any, *, sync: bool) -> ModelCall | None:
        """What the guard's ChatModelBackend runs for this call; None (no model): a slot says so loudly.

        `callbacks`: what the model's run nests under (`nested_callbacks`). `sync`: through the
        model's own sync API, in a worker thread, as the caller asked.
        """
        if self.model is None:
            return None
        runnable: Any = self.bound if self.bound is not None else self.model

        async def invoke(sent: list[BaseMessage], options: dict[str, Any]) -> AIMessage:
            if sync:
                return _ai_message(await asyncio.to_thread(runnable.invoke, sent, **options))
            return _ai_message(await runnable.ainvoke(sent, **options))

        def stream(sent: list[BaseMessage], options: dict[str, Any]) -> AsyncIterator[AIMessageChunk]:
            if sync:
                return iterate_in_thread(runnable.stream(sent, **options))
            return runnable.astream(sent, **options)  # type: ignore[no-any-return]

        return ModelCall(self.model, invoke, stream, originals=messages, callbacks=callbacks)


def _ai_message(result: Any) -> AIMessage:
    if not isinstance(result, AIMessage):
        raise TypeError(f"the wrapped model returned {type(result).__name__}, not an AIMessage")
    return result


def _params(stop: list[str] | None, kwargs: Mapping[str, Any]) -> GenerationParams:
    return GenerationParams.from_kwargs(**kwargs, **({"stop": stop} if stop else {}))


def _last_chunk(answer: StreamedAnswer, produced: BaseMessage | None) -> AIMessageChunk:
    """The stream's last chunk: the decision and, when the model's own answer stands, its usage and
    response metadata (model name, finish reason), once, as providers' streams end."""
    message = guarded_message(answer.response, produced)
    meta = message.response_metadata
    meta["cosa_guard"] = {
        **meta["cosa_guard"],
        "retracted": answer.retracted,
        "released_chars": len(answer.released),
    }
    # Nothing more when the answer stands; else the refusal (in place of any retracted text).
    return AIMessageChunk(
        content=answer.closing,
        response_metadata=meta,
        usage_metadata=message.usage_metadata,
        chunk_position="last",
    )
