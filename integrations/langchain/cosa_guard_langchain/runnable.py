"""`guard_chain`: guard the model calls of an existing LCEL chain, leaving the rest of it as it is.

    chain = guard_chain(prompt | ChatOpenAI() | StrOutputParser(),
                        deployment="kids", deployments="deployments.yaml")
    chain.invoke({"question": "..."})       # the model step now answers through the guard

How: the chain is walked (sequences, parallels, bindings, fallbacks, branches: any LCEL
composite) and every chat model in it, or a model bound to tools or options, is replaced by a
`GuardedChatModel` over it. The original chain is not modified. A callback could watch a model
call but not stop one, and a chat model's tokens reach streaming clients through callbacks
before any after-the-fact check could run; swapping the step is the only way to put the guard
in the call path. Models called inside a `RunnableLambda` or a plain function are out of reach
of any walk: wrap those with `GuardedChatModel` yourself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableBinding

from cosa_guard_langchain._walk import replace_chat_models
from cosa_guard_langchain.chat_model import GuardedChatModel

__all__ = ["guard_chain"]


def guard_chain(
    chain: Runnable[Any, Any],
    *,
    deployment: str,
    guard: Any | None = None,
    deployments: str | Path | None = None,
    route: Literal["cascade", "cosalign"] = "cascade",
    raise_on_refusal: bool = False,
    **guard_options: Any,
) -> Runnable[Any, Any]:
    """A copy of `chain` whose chat-model steps answer through deployment `deployment`'s guard.

    Give either `deployments` (the signed deployments file: each model found gets a guard with
    it as the `route` backend; `guard_options` such as `judge=` go to `Guard.single`) or `guard`
    (a `Guard` you built: the chain's models run where its route is a `ChatModelBackend`).
    `raise_on_refusal`: a refusal raises `GuardRefusalError` (a failure always raises
    `GuardFailedError`). Models that are already guarded are left alone. ValueError when the
    chain has no model to guard.
    """
    if (guard is None) == (deployments is None):
        raise ValueError(
            "guard_chain needs exactly one of guard= (a Guard) or deployments= (a deployments file)"
        )
    if guard is not None and guard_options:
        raise ValueError(
            f"options {sorted(guard_options)} only apply with deployments=; configure your Guard instead"
        )

    if guard is not None:

        def guarded(model: BaseChatModel) -> GuardedChatModel:
            return GuardedChatModel.from_guard(
                guard, deployment, model=model, raise_on_refusal=raise_on_refusal
            )
    else:
        from cosa_guard.deployments import DeploymentRegistry

        loaded = DeploymentRegistry.load(deployments).get(deployment)  # type: ignore[arg-type]

        def guarded(model: BaseChatModel) -> GuardedChatModel:
            return GuardedChatModel.for_deployment(
                model, loaded, route=route, raise_on_refusal=raise_on_refusal, **guard_options
            )

    def wrap(model: BaseChatModel, binding: RunnableBinding[Any, Any] | None) -> Runnable[Any, Any] | None:
        if isinstance(model, GuardedChatModel):
            return None
        wrapped = guarded(model)
        return wrapped.with_runnable(binding) if binding is not None else wrapped

    result, replaced = replace_chat_models(chain, wrap)
    if not replaced:
        raise ValueError(
            "guard_chain found no unguarded chat model in the chain; models called inside a RunnableLambda "
            "or a function are out of its reach: wrap them with GuardedChatModel"
        )
    return result
