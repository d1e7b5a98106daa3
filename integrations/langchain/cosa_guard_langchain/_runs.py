"""Which LangChain run a `GuardedChatModel` call is, where LangChain does not pass it on.

The guard's steps and the wrapped model's run nest under the guarded model's own run. `_generate`
gets that run's manager, but `stream`/`astream` call `_stream`/`_astream` without it, and so does
an `invoke` that streams for a streaming handler (`astream_events`, LangGraph's messages mode).
For those, `GuardedChatModel` fixes the run's id before LangChain starts it (`pin_run`) or
catches its manager where LangChain decides to stream (`remember`), and `_stream`/`_astream`
take the result from a context variable (`nested_callbacks`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.callbacks.manager import AsyncRunManager
from langchain_core.runnables import RunnableConfig, ensure_config

from cosa_guard.scoped import scoped

__all__ = ["nested_callbacks", "pin_run", "remember"]

_NESTED: ContextVar[Any] = ContextVar("cosa_guard_langchain_nested", default=None)


@contextmanager
def pin_run(config: RunnableConfig | None) -> Iterator[RunnableConfig]:
    """`config` with the id the model's run will get; `_stream`/`_astream` called inside the block
    nest under that run (`scoped`: the block spans the yields of a stream).

    The callbacks are configured here, once, and the model's run is given them: configured again
    by LangChain, a LangSmith tracer that only the environment asks for would be a new instance,
    which would not know the model's run and would make the nested runs traces of their own.
    """
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid.uuid4()
    callbacks = CallbackManager.configure(
        config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    nested = callbacks.copy()
    nested.parent_run_id = run_id
    with scoped(_NESTED, nested):
        yield {**config, "run_id": run_id, "callbacks": callbacks}


def remember(run_manager: Any) -> None:
    """The next `_stream`/`_astream` in this context nests under `run_manager`'s run."""
    _NESTED.set(_under(run_manager))


def nested_callbacks(run_manager: Any) -> Any:
    """Callbacks for runs nested under the call's model run: from `run_manager` when LangChain
    passed one, else the ones set for this call (taken once); None: the ambient run's."""
    if run_manager is not None:
        return _under(run_manager)
    callbacks = _NESTED.get()
    _NESTED.set(None)
    return callbacks


def _under(run_manager: Any) -> CallbackManager | AsyncCallbackManager:
    """Callbacks for runs nested under `run_manager`'s run (an LLM run has no `get_child`).

    A sync run manager gets a sync manager: the wrapped model then runs through its sync API.
    """
    kind = AsyncCallbackManager if isinstance(run_manager, AsyncRunManager) else CallbackManager
    manager = kind(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager
