"""`GET /readyz`: may a load balancer send calls here now? (`/healthz` reports how the server is.)

Ready once the app has started (its lifespan ran: the reloader and watcher are up) while at least
one deployment is loaded, and until shutdown begins. Not ready is 503 with `Retry-After`, so a
probe or a client retries rather than giving up. Needs no key and says nothing about configs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cosa_guard.server.errors import RETRY_AFTER_S

READY_STATE = "ready"  # app.state attribute the lifespan sets


async def readyz(request: Request) -> Response:
    state = request.app.state
    deployments = len(state.guard.registry.ids())
    if not getattr(state, READY_STATE, False):
        status = "not started" if not hasattr(state, READY_STATE) else "shutting down"
    elif not deployments:
        status = "no deployments"
    else:
        return JSONResponse({"status": "ready", "deployments": deployments})
    return JSONResponse(
        {"status": status, "deployments": deployments},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
