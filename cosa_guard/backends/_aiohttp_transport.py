"""An httpx transport over aiohttp: the same httpx requests and responses, a C HTTP parser underneath.

The guarded server spends most of a plain call's CPU on its hop to the model server. httpx's own
stack (httpcore, h11 and anyio, all pure Python) measured ~570 µs of CPU per call against a fast
upstream, aiohttp's ~120 µs; through this transport the whole backend call costs ~330 µs. It is
used when aiohttp is installed (the `server` extra) unless a deployment asks for `http: httpx`.

Why not the `httpx-aiohttp` package: it maps a dropped connection (`ServerDisconnectedError`) to
`httpx.ConnectTimeout`, which the backend treats as "never sent" and retries; a request the model
server may already be working on must not be sent twice. Here only failures before the request
left (no connection, no free slot) become connect/pool errors; everything after is a read error.

A semaphore bounds the requests in flight, as `PooledTransport` does: waiting longer than the
pool timeout is `httpx.PoolTimeout`, and a slot is held until the response is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from cosa_guard._optional import require
from cosa_guard.backends._slots import InFlightSlots

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpTransport", "aiohttp_available", "aiohttp_module"]


def aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def aiohttp_module() -> Any:
    """aiohttp, or an error naming the extra that installs it."""
    return require("aiohttp", "server", "the aiohttp HTTP client of the openai backend")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`limits.max_connections` bounds the requests in flight; idle connections live `keepalive_expiry`."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._aiohttp = aiohttp_module()
        self._limits = limits
        self._slots = InFlightSlots(limits.max_connections, httpx.PoolTimeout)
        self._session: aiohttp.ClientSession | None = None  # bound to the loop of the first call

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = self._aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 0,
            )
            self._session = self._aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        connect, read = timeout.get("connect"), timeout.get("read")
        await self._slots.acquire(timeout.get("pool"))
        try:
            aio = self._aiohttp
            try:
                # aiohttp's own sock_read timer runs while nobody reads (a consumer pausing between
                # chunks would time out); httpx's bounds each read, so reads are timed here instead.
                async with asyncio.timeout(None if read is None else read + (connect or 0.0)):
                    response = await self._client().request(
                        request.method,
                        str(request.url),
                        headers=request.headers.multi_items(),
                        data=request.content or None,
                        allow_redirects=False,
                        timeout=aio.ClientTimeout(total=None, sock_connect=connect),
                    )
            except Exception as exc:
                raise _mapped(aio, exc) from exc
        except BaseException:
            self._slots.release()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(self, response, read),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx.AsyncByteStream):
    """A response body; closing it (read to the end or not) gives the request's slot back once."""

    def __init__(
        self, transport: AiohttpTransport, response: aiohttp.ClientResponse, read_timeout: float | None
    ) -> None:
        self._transport = transport
        self._response = response
        self._read_timeout = read_timeout
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                async with asyncio.timeout(self._read_timeout):
                    chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except Exception as exc:
            raise _mapped(self._transport._aiohttp, exc) from exc

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._response.release()  # back to the pool when the body was read, else the socket closes
            self._transport._slots.release()


def _mapped(aio: Any, exc: Exception) -> httpx.TransportError:
    """The httpx exception for an aiohttp failure; only a request that never left may look unsent."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aio.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aio.ClientConnectorError):  # DNS, refused, unreachable, TLS handshake
        return httpx.ConnectError(message)
    if isinstance(exc, aio.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aio.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aio.ClientPayloadError | aio.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aio.ClientError | OSError):  # dropped connections: the request may have arrived
        return httpx.ReadError(message)
    return httpx.TransportError(message)
