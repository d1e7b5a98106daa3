"""The sync shims: one private loop, abandoned iterators closed, no self-deadlock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from cosa_guard_langchain._sync import iterate_in_thread, iterate_sync, run_sync


async def loop_thread() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_run_sync_uses_one_long_lived_loop() -> None:
    assert run_sync(loop_thread()) == run_sync(loop_thread()) == "cosa-guard-langchain"


async def test_run_sync_works_under_a_running_loop() -> None:
    # A sync LangChain call made from async code (a sync tool in an async app) must not need a nested loop.
    assert run_sync(loop_thread()) == "cosa-guard-langchain"


def test_an_abandoned_sync_iterator_closes_the_async_one() -> None:
    closed = threading.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.set()

    items = iterate_sync(numbers())
    assert [next(items), next(items)] == [0, 1]
    items.close()
    assert closed.is_set()


def test_a_sync_call_from_the_guards_own_loop_is_refused_not_deadlocked() -> None:
    async def nested() -> int:
        return run_sync(asyncio.sleep(0, result=1))

    with pytest.raises(RuntimeError, match="use the async API"):
        run_sync(nested())


async def test_a_sync_iterator_runs_in_worker_threads_and_is_closed_when_abandoned() -> None:
    closed = threading.Event()
    threads: list[str] = []

    def numbers() -> Iterator[int]:
        try:
            for i in range(10):
                threads.append(threading.current_thread().name)
                yield i
        finally:
            closed.set()

    items = iterate_in_thread(numbers())
    assert [await anext(items), await anext(items)] == [0, 1]
    await items.aclose()
    assert closed.is_set()
    assert threading.current_thread().name not in threads  # never on the loop's thread
