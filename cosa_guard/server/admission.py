"""Per-API-key concurrency: one client's burst cannot take the server away from every other client.

`KeySlots` counts the chat calls each API key has in flight, against its deployment's
`limits.max_concurrency_per_key`; a call over the limit is answered 429 before its body is read.
The count is per worker process (with `--workers N` a key may have N times the limit in flight).
`ReleaseSlot` wraps the chat route: however its response ends (sent, streamed to the end, the
client gone, an error), the slot the request took is given back. Everything runs on the event
loop and nothing here awaits between reading and writing a count, so no lock is needed.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from cosa_guard.settings import hash_api_key

_HELD = "cosa_guard.key_slot"  # the scope entry naming the key whose slot this request holds


class KeySlots:
    """Calls in flight per API key (stored by the key's hash, and only while it has calls)."""

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(hash_api_key(key), 0)

    def acquire(self, scope: MutableMapping[str, Any], key: str, limit: int | None) -> bool:
        """Take a slot for this request; False when the key already has `limit` calls in flight."""
        if limit is None:
            return True
        held = hash_api_key(key)
        count = self._in_flight.get(held, 0)
        if count >= limit:
            return False
        self._in_flight[held] = count + 1
        scope[_HELD] = held
        return True

    def release(self, scope: MutableMapping[str, Any]) -> None:
        held = scope.pop(_HELD, None)
        if held is None:
            return
        count = self._in_flight[held] - 1
        if count:
            self._in_flight[held] = count
        else:
            del self._in_flight[held]


class ReleaseSlot:
    """ASGI middleware for one route: gives the request's slot back once its response has ended."""

    def __init__(self, app: ASGIApp, slots: KeySlots) -> None:
        self.app = app
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release(scope)
