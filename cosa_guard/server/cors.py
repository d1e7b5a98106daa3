"""Opt-in CORS, for chat UIs that call the server from a browser.

Off unless origins are given (`create_app(cors_origins=...)`, `cosa-guard serve --cors-origin`).
Requests authenticate with a bearer key, never a cookie, so credentials stay off; any request
header is allowed because browser SDKs add their own (the openai SDK's `x-stainless-*`). The
headers a UI may want to read are exposed: the request id, the guard's decision and Retry-After.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware

from cosa_guard.server.errors import DECISION_HEADER, RULE_HEADER
from cosa_guard.server.request_ids import REQUEST_ID_HEADER

_PREFLIGHT_CACHE_S = 600


def add_cors(app: Starlette, origins: Sequence[str]) -> None:
    """Answer CORS requests (preflights included) from `origins` (`*` for any)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        allow_credentials=False,
        expose_headers=[REQUEST_ID_HEADER, DECISION_HEADER, RULE_HEADER, "Retry-After"],
        max_age=_PREFLIGHT_CACHE_S,
    )
