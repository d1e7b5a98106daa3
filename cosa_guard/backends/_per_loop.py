"""One HTTP transport per event loop, so one backend serves callers on several loops.

A pooled connection belongs to the loop that opened it (aiohttp's session and httpcore's anyio
streams both bind to it): without this, a script that gives each call a fresh event loop fails
from its second call on with "Event loop is closed", and a LangChain model used through both
`invoke` (the sync shim's background loop) and `ainvoke` (the caller's loop) breaks whichever
came second.
Transports of loops that have since closed are dropped when a new loop appears.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx


class PerLoopTransport(httpx.AsyncBaseTransport):
    """Routes each request to the transport `factory` built for the running loop (one per loop)."""

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._factory = factory
        self._by_loop: dict[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._by_loop.get(asyncio.get_running_loop())
        if transport is None:
            transport = await self._for_new_loop()
        return await transport.handle_async_request(request)

    async def _for_new_loop(self) -> httpx.AsyncBaseTransport:
        # Registered before any await, so concurrent first calls on this loop share one transport.
        transport = self._by_loop[asyncio.get_running_loop()] = self._factory()
        for loop in [loop for loop in self._by_loop if loop.is_closed()]:
            await _close_orphan(self._by_loop.pop(loop))
        return transport

    async def aclose(self) -> None:
        """Close the running loop's transport here, and ask other live loops to close theirs."""
        running = asyncio.get_running_loop()
        transports, self._by_loop = self._by_loop, {}
        for loop, transport in transports.items():
            if loop is running:
                await transport.aclose()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(transport.aclose(), loop)
            else:
                await _close_orphan(transport)


async def _close_orphan(transport: httpx.AsyncBaseTransport) -> None:
    """Close a transport whose loop is gone. Its sockets cannot be shut down through that loop any
    more (that raises "Event loop is closed"); marking the pool closed is what keeps aiohttp from
    reporting an unclosed session, and the sockets close when collected."""
    with contextlib.suppress(RuntimeError):
        await transport.aclose()
