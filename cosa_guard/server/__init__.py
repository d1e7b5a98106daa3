"""The OpenAI-compatible server (extra `server`): `create_app(guard)` and what `cosa-guard serve` runs.

`errors` and `wire` need only the core; `app` imports FastAPI, so it is loaded on first use of
`create_app` and a missing extra is reported then, naming what to install.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from cosa_guard.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
