"""LangChain's sync API (`invoke`, `stream`, `batch`) over the async guard.

The guard is async all the way down. Sync calls run it on one long-lived event loop in a daemon
thread rather than a fresh loop per call: the guard's clients, locks and breakers stay on one
loop, and a sync call made from inside a running loop (a sync tool in an async app) does not
need a nested loop. The guarded call runs in a copy of the caller's context (its LangChain run
config), as `asyncio.run_coroutine_threadsafe` schedules it.

The wrapped model never runs on that loop. A sync call runs the model's own sync API in a worker
thread (`asyncio.to_thread`, `iterate_in_thread`), so the model's async clients only ever see the
app's loops and one model serves `invoke` and `ainvoke` alike; the worker thread gets a copy of
the guarded call's context, so the model runs under the guard's detached callbacks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _runner() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="cosa-guard-langchain", daemon=True)
            _thread.start()
        if threading.current_thread() is _thread:
            raise RuntimeError(
                "a sync LangChain call (invoke/stream/batch) was made from inside the guard's own "
                "event loop; use the async API (ainvoke/astream/abatch) there"
            )
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the runner loop and wait for its result in this thread."""
    try:
        loop = _runner()
    except RuntimeError:
        coro.close()
        raise
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def iterate_sync(items: AsyncGenerator[T, None]) -> Iterator[T]:
    """Iterate an async generator from sync code; closes it on the runner loop when abandoned."""
    loop = _runner()
    try:
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(_next(items), loop).result()
            except StopAsyncIteration:
                return
    finally:
        asyncio.run_coroutine_threadsafe(items.aclose(), loop).result()


async def _next(items: AsyncIterator[T]) -> T:
    return await items.__anext__()


async def iterate_in_thread(items: Iterator[T]) -> AsyncGenerator[T, None]:
    """A sync iterator (a model's `stream`) as an async one, each step in a worker thread.

    Closing it (or abandoning it) closes `items`, in a worker thread too.
    """
    done = object()
    try:
        while (item := await asyncio.to_thread(next, items, done)) is not done:
            yield item  # type: ignore[misc]
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
