"""ASGI middleware: every request gets an id, echoed as `x-request-id` on its response.

The id is the client's `x-request-id` when it is sane (`cosa_guard.request_ids.accept_request_id`),
else a new one. It is stored in the scope (`request.state.request_id`) for the endpoints, which
hand it to the guard, so the body's `id`, the audit record and the header agree, and set in a
context variable for the log records written while the request is served.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cosa_guard.request_ids import accept_request_id, current_request_id

REQUEST_ID_HEADER = "x-request-id"
_HEADER_KEY = REQUEST_ID_HEADER.encode("latin-1")


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = next((v for k, v in scope["headers"] if k == _HEADER_KEY), None)
        request_id = accept_request_id(client_id.decode("latin-1") if client_id is not None else None)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
