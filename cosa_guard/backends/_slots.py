"""The bound on requests in flight that both HTTP transports of the `openai` backend share."""

from __future__ import annotations

import asyncio


class InFlightSlots:
    """At most `limit` requests hold a slot (None: no bound); a slot is held until its response closes.

    Waiting longer than the request's pool timeout raises `timeout_error`: each transport passes
    the `PoolTimeout` its own layer maps (httpcore's, or httpx's).
    """

    def __init__(self, limit: int | None, timeout_error: type[Exception]) -> None:
        self._semaphore = asyncio.Semaphore(limit) if limit else None
        self._timeout_error = timeout_error

    async def acquire(self, wait_s: float | None) -> None:
        if self._semaphore is None:
            return
        try:
            async with asyncio.timeout(wait_s):
                await self._semaphore.acquire()
        except TimeoutError as exc:
            raise self._timeout_error(f"no connection became free within {wait_s:g} s") from exc

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
