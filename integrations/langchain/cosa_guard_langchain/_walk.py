"""Finding the chat models inside an LCEL runnable and swapping them, without touching anything else.

LCEL composites (RunnableSequence, RunnableParallel, RunnableBinding, RunnableWithFallbacks,
RunnableBranch, RunnableAssign, ...) are pydantic models whose fields hold their steps, so one
generic walk over fields, lists, tuples and mappings reaches them all; `model_copy(update=...)`
rebuilds a composite with new steps and leaves the original chain as it was. Code inside a
`RunnableLambda` or a plain function is opaque to any walk: models called there must be wrapped
by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableBinding
from pydantic import BaseModel

Wrap = Callable[[BaseChatModel, RunnableBinding[Any, Any] | None], Runnable[Any, Any] | None]
"""`wrap(model, binding)`: what replaces `model` (or `binding`, the model bound to options); None keeps it."""


def replace_chat_models(runnable: Runnable[Any, Any], wrap: Wrap) -> tuple[Runnable[Any, Any], int]:
    """A copy of `runnable` with every chat model `wrap` replaces; and how many it replaced."""
    count = 0

    def node(value: Runnable[Any, Any]) -> Runnable[Any, Any]:
        nonlocal count
        if isinstance(value, BaseChatModel):  # never descend into a model (a guarded one holds a model too)
            new = wrap(value, None)
        elif isinstance(value, RunnableBinding) and isinstance(value.bound, BaseChatModel) and value.kwargs:
            # bind_tools / bind(...): the options belong to the model call, so the binding is the unit.
            new = wrap(value.bound, value)
        else:
            return fields(value)
        if new is None:
            return value
        count += 1
        return new

    def fields(value: Runnable[Any, Any]) -> Runnable[Any, Any]:
        if not isinstance(value, BaseModel):
            return value
        updates = {}
        for name in type(value).model_fields:
            old = getattr(value, name, None)
            new = any_value(old)
            if new is not old:
                updates[name] = new
        return value.model_copy(update=updates) if updates else value

    def any_value(value: Any) -> Any:
        if isinstance(value, Runnable):
            return node(value)
        if isinstance(value, (list, tuple)):
            items = [any_value(v) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items) if isinstance(value, list) else tuple(items)
        if isinstance(value, Mapping):
            mapped = {k: any_value(v) for k, v in value.items()}
            return value if all(mapped[k] is value[k] for k in value) else mapped
        return value

    return node(runnable), count
