"""A context variable set for one block, where the block may span a generator's yields."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["scoped"]

T = TypeVar("T")


@contextmanager
def scoped(var: ContextVar[T], value: T) -> Iterator[None]:
    """`var` is `value` inside the block.

    Restores the previous value by value, not by token: the block may span the yields of an
    async generator, which can resume in another context where a token would not be valid.
    """
    previous = var.get()
    var.set(value)
    try:
        yield
    finally:
        var.set(previous)
