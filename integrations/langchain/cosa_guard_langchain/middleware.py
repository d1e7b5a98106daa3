"""`CosaGuardMiddleware`: a deployment's guard inside a LangChain v1 agent (`langchain.agents.create_agent`).

    guard = CosaGuardMiddleware.from_deployments("deployments.yaml", "kids")
    agent = create_agent(model, tools, middleware=[guard])

Three hooks, each with its sync twin for `agent.invoke` / `agent.stream`:

- `abefore_model`, the input gate: the conversation so far (user turns and tool results) goes
  through the input guard; an injection ends the run at once (`jump_to: "end"`) with the refusal
  as the last message, before any model call.
- `awrap_model_call`, routing and the output judge: the model call runs *inside* the guard. The
  guard's route calls the agent's own handler (the agent's model, tools bound, any inner
  middleware), judges the answer, tool calls included, and a violating answer is replaced by
  the refusal, without tool calls, so the agent cannot act on it.
- `aafter_model`: a refused answer ends the run (`jump_to: "end"`), the refusal its last message;
  an agent that still expects an answer (structured output) would otherwise ask the model again
  and again.

A failed decision raises `GuardFailedError`, and a refusal raises `GuardRefusalError` where
`raise_on_refusal=True`. The model call inside the guard runs without the callback handlers
that feed streams, sync or async, so `agent.stream` / `agent.astream(stream_mode="messages")`
show the guarded answer, never the raw tokens (the known hole where streamed tokens bypass
after-model checks). The guard's steps are child runs of the agent's model step (see `steps`).
Needs the `agents` extra.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse, hook_config
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage

from cosa_guard.deployments import LoadedDeployment
from cosa_guard.failures import describe
from cosa_guard.injection.base import InputGuard
from cosa_guard.langchain_messages import from_langchain
from cosa_guard.tracing import observe
from cosa_guard.types import Decision, FailureKind, GuardResponse, Route
from cosa_guard_langchain._sync import run_sync
from cosa_guard_langchain.backend import (
    ChatModelBackend,
    ModelCall,
    use_call,
    whole_chunk,
)
from cosa_guard_langchain.chat_model import guarded_message, keeps_produced
from cosa_guard_langchain.errors import raise_for
from cosa_guard_langchain.steps import run_steps

__all__ = ["CosaGuardMiddleware"]

# Strings: langchain 1.0's ModelRequest / ModelResponse / AgentMiddleware take no type parameters.
AsyncHandler = Callable[["ModelRequest[Any]"], Awaitable["ModelResponse[Any]"]]


class CosaGuardMiddleware(AgentMiddleware):
    """Guards every model call of an agent with deployment `deployment_id` of `guard`.

    `guard`'s route must be a `ChatModelBackend()` slot for the agent's own model to answer
    (`from_deployments` builds it so); a guard with other routes answers with those instead.
    `input_guard` runs in `abefore_model`; without one the gate is skipped and the guard's own
    input guard still refuses inside `awrap_model_call` (one model-less step later).
    `raise_on_refusal`: a refusal raises `GuardRefusalError` out of the agent run instead of
    ending it with the refusal message.
    """

    def __init__(
        self,
        guard: Any,
        deployment_id: str,
        *,
        input_guard: InputGuard | None = None,
        raise_on_refusal: bool = False,
    ) -> None:
        super().__init__()
        self.guard = guard
        self.deployment_id = deployment_id
        self.input_guard = input_guard
        self.raise_on_refusal = raise_on_refusal
        self.deployment  # noqa: B018 - an unknown id fails here, not mid-run

    @classmethod
    def from_deployments(
        cls,
        path: str | Path,
        deployment_id: str,
        *,
        input_guard: InputGuard | None = None,
        raise_on_refusal: bool = False,
        **guard_options: Any,
    ) -> CosaGuardMiddleware:
        """Guard an agent with a deployment of the signed deployments file at `path`.

        The agent's model is the cascade's generator; `guard_options` (`judge`, `audit`,
        `metrics`) go to `Guard.single`, and `input_guard` to both the gate and the guard
        (default: the shipped detector, when the deployment enables injection checks and
        `cosa_guard.injection.detector` is installed).
        """
        from cosa_guard.deployments import DeploymentRegistry
        from cosa_guard.guard import Guard

        deployment = DeploymentRegistry.load(path).get(deployment_id)
        if input_guard is None and deployment.spec.injection.enabled:
            input_guard = _default_input_guard()
        guard = Guard.single(
            deployment, fallback=ChatModelBackend(), input_guard=input_guard, **guard_options
        )
        return cls(guard, deployment_id, input_guard=input_guard, raise_on_refusal=raise_on_refusal)

    @property
    def deployment(self) -> LoadedDeployment:
        """The deployment as the guard serves it now (a reload may have changed its config)."""
        return cast("LoadedDeployment", self.guard.registry.get(self.deployment_id))

    @property
    def name(self) -> str:
        return f"CosaGuardMiddleware[{self.deployment_id}]"

    # --- input gate ---------------------------------------------------------------------------

    @hook_config(can_jump_to=["end"])
    async def abefore_model(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        spec = self.deployment.spec.injection
        if self.input_guard is None or not spec.enabled:
            return None
        try:
            check = await self.input_guard.check(from_langchain(state["messages"]), spec)
        except Exception as exc:
            if self.deployment.spec.fail_mode == "open":
                return None
            return self._end(Decision.failed(FailureKind.JUDGE, f"input guard: {describe(exc)}"))
        if check.refusal is None:
            return None
        detail = "; ".join(f"{f.detector}: {f.reason}" for f in check.findings[:3])
        return self._end(Decision.refused(check.refusal, detail))

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        return run_sync(self.abefore_model(state, runtime))

    def _end(self, decision: Decision) -> dict[str, Any]:
        response = GuardResponse(
            text=self.deployment.refusal_text,
            decision=decision,
            route=Route.NONE,
            deployment_id=self.deployment_id,
            config_hash=self.deployment.config_hash,
        )
        raise_for(response, raise_on_refusal=self.raise_on_refusal)
        return {"messages": [guarded_message(response, None)], "jump_to": "end"}

    # --- the model call, inside the guard -----------------------------------------------------

    async def awrap_model_call(self, request: ModelRequest[Any], handler: AsyncHandler) -> ModelResponse[Any]:
        originals: list[BaseMessage] = [*_system_messages(request), *request.messages]
        answered: list[ModelResponse[Any]] = []

        async def invoke(sent: list[BaseMessage], options: dict[str, Any]) -> AIMessage:
            system = "\n\n".join(str(m.text) for m in sent if m.type == "system")
            turns: list[Any] = [m for m in sent if m.type != "system"]
            result = _as_model_response(await handler(_with_system(request, system, turns)))
            answered.append(result)
            return _first_ai(result)

        async def stream(sent: list[BaseMessage], options: dict[str, Any]) -> AsyncIterator[AIMessageChunk]:
            yield whole_chunk(await invoke(sent, options))  # the agent's handler answers whole

        call = ModelCall(model=None, invoke=invoke, stream=stream, originals=originals)
        with use_call(call), observe(run_steps()):  # under the current run: the agent's model step
            response = await self.guard.chat(self.deployment_id, from_langchain(originals))
        raise_for(response, raise_on_refusal=self.raise_on_refusal)
        message = guarded_message(response, call.result)
        if answered and keeps_produced(response, call.result):
            last = answered[-1]
            rest = [m for m in last.result if m is not call.result]
            return ModelResponse(result=[message, *rest], structured_response=last.structured_response)
        return ModelResponse(result=[message])

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any]:
        # The sync agent API: the guard runs on the private loop, in a copy of this thread's context
        # (the agent's run config); the handler, in a worker thread with a copy of the guard's
        # context at the call, which the backend has detached from the stream handlers. A context
        # captured here, before that, would stream the model's raw tokens.
        async def async_handler(req: ModelRequest[Any]) -> ModelResponse[Any]:
            return await asyncio.to_thread(handler, req)

        return run_sync(self.awrap_model_call(request, async_handler))

    # --- a block ends the run ------------------------------------------------------------------

    @hook_config(can_jump_to=["end"])
    def after_model(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        messages = state["messages"]
        last = messages[-1] if messages else None
        info = last.response_metadata.get("cosa_guard") if isinstance(last, AIMessage) else None
        return {"jump_to": "end"} if info is not None and not info["allowed"] else None

    @hook_config(can_jump_to=["end"])
    async def aafter_model(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        return self.after_model(state, runtime)


def _default_input_guard() -> InputGuard | None:
    try:
        from cosa_guard.injection.detector import default_input_guard
    except ModuleNotFoundError as exc:
        if exc.name != "cosa_guard.injection.detector":
            raise
        return None  # the guard logs that only the privilege rule protects the config then
    detector: InputGuard = default_input_guard()
    return detector


# langchain 1.0 carries the system prompt as `system_prompt: str`; later 1.x as `system_message`.


def _system_messages(request: ModelRequest[Any]) -> list[BaseMessage]:
    message = getattr(request, "system_message", None)
    if message is None and request.system_prompt:
        message = SystemMessage(content=request.system_prompt)
    return [message] if message is not None else []


def _with_system(request: ModelRequest[Any], system: str, turns: list[Any]) -> ModelRequest[Any]:
    if "system_message" in {f.name for f in dataclasses.fields(request)}:
        return request.override(
            system_message=SystemMessage(content=system) if system else None, messages=turns
        )
    return request.override(system_prompt=system or None, messages=turns)  # type: ignore[call-arg]


def _as_model_response(result: Any) -> ModelResponse[Any]:
    if hasattr(result, "model_response"):  # ExtendedModelResponse (later 1.x): its command is not ours to run
        return cast("ModelResponse[Any]", result.model_response)
    if isinstance(result, AIMessage):
        return ModelResponse(result=[result])
    return result  # type: ignore[no-any-return]


def _first_ai(response: ModelResponse[Any]) -> AIMessage:
    for message in response.result:
        if isinstance(message, AIMessage):
            return message
    raise TypeError("the agent's model call returned no AIMessage")
