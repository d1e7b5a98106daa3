"""An httpx transport whose connection pool stays flat under many concurrent calls.

`httpx.AsyncClient`'s default pool (httpcore 1.0's `AsyncConnectionPool`) re-plans every
connection on every request start and end: each pass scans connections x queued requests, polls
each idle socket, and can hand one idle connection to two requests (it stays IDLE until the first
task runs), so the loser fails internally with `ConnectionNotAvailable` and queues again
(encode/httpx#3215). Against a fast upstream at 64 concurrent calls that measured about 15 passes
and 2 ms of CPU per request, and calls waiting seconds for a connection.

Here a request checks a connection out exclusively: a semaphore bounds the requests in flight, the
most recently used idle connection is reused (a stack), and the response's close hands it back.
Constant work per request, no re-planning, no double assignment. The connections themselves are
httpcore's, built by the pool httpx configured (`create_connection`), so TLS, keep-alive expiry,
socket options and HTTP/1.1 framing are exactly httpx's; only the bookkeeping is replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any

import anyio
import httpcore
import httpx

from cosa_guard.backends._slots import InFlightSlots

__all__ = ["PooledTransport"]


class PooledTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` (request mapping, error mapping, TLS) over an exclusive-checkout pool.

    `limits.max_connections` bounds the requests in flight (more wait, up to the pool timeout);
    idle connections are kept until `limits.keepalive_expiry` or until the server closes them.
    """

    def __init__(self, *, limits: httpx.Limits, **kwargs: Any) -> None:
        super().__init__(limits=limits, **kwargs)
        # Replaces the pool httpx built, keeping it as the connection factory. httpx only calls
        # handle_async_request, aclose and the async context methods on it.
        self._pool = _ExclusivePool(self._pool, limits.max_connections)  # type: ignore[assignment]


class _ExclusivePool:
    def __init__(self, factory: httpcore.AsyncConnectionPool, max_connections: int | None) -> None:
        self._factory = factory
        self._slots = InFlightSlots(max_connections, httpcore.PoolTimeout)
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncConnectionInterface]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        await self._slots.acquire(request.extensions.get("timeout", {}).get("pool"))
        try:
            while True:
                connection = await self._checkout(request.url.origin)
                try:
                    response = await connection.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:
                    # A kept-alive connection the server closed between our check and the send; only
                    # reused connections fail so, a fresh one does not: the loop ends.
                    await _close(connection)
                    continue
                except BaseException:
                    await self._checkin(connection, request.url.origin)
                    raise
                break
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_ReturningStream(response.stream, self, connection, request.url.origin),
            extensions=response.extensions,
        )

    async def _checkout(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        idle = self._idle.get(_key(origin))
        while idle:
            connection = idle.pop()
            # has_expired() is also true when the server has closed the idle socket.
            if connection.is_idle() and not connection.has_expired():
                return connection
            await _close(connection)
        return self._factory.create_connection(origin)

    async def _checkin(self, connection: httpcore.AsyncConnectionInterface, origin: httpcore.Origin) -> None:
        """Keep a connection that can take another request, close anything else."""
        if self._closed or not connection.is_idle():
            await _close(connection)
            return
        idle = self._idle.setdefault(_key(origin), [])
        idle.append(connection)
        # The bottom of the stack is the longest unused: drop it once its keep-alive is over.
        while len(idle) > 1 and idle[0].has_expired():
            await _close(idle.pop(0))

    async def aclose(self) -> None:
        self._closed = True
        idle = [connection for stack in self._idle.values() for connection in stack]
        self._idle.clear()
        for connection in idle:
            await _close(connection)
        await self._factory.aclose()

    async def __aenter__(self) -> _ExclusivePool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class _ReturningStream:
    """A response body that returns its connection to the pool once closed."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        pool: _ExclusivePool,
        connection: httpcore.AsyncConnectionInterface,
        origin: httpcore.Origin,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._connection: httpcore.AsyncConnectionInterface | None = connection
        self._origin = origin

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                if hasattr(self._stream, "aclose"):
                    await self._stream.aclose()
                await self._pool._checkin(connection, self._origin)
        finally:
            self._pool._slots.release()


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return origin.scheme, origin.host, origin.port


async def _close(connection: httpcore.AsyncConnectionInterface) -> None:
    with anyio.CancelScope(shield=True):
        await connection.aclose()
