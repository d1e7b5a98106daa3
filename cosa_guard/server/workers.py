"""`cosa-guard serve --workers N`: the same app in N processes sharing one listening socket.

One process serves about 1,500 guarded calls per second per core (docs/server.md); more cores
need more processes. uvicorn's supervisor starts the workers, and each builds its own guard from
the options `cosa-guard serve` left in the environment (`COSA_GUARD_SERVE`), verifying every
config itself.

Reloads keep the last good config in every worker. SIGHUP to the supervisor replaces the
workers one at a time, each replacement serving before its predecessor retires; a replacement
whose configs fail to verify never starts, so the old worker keeps serving and the rest of the
restart is abandoned (logged). A replacement may take up to `--worker-start-timeout` to load its
models and start serving (uvicorn's own default, 5 s, is shorter than loading the category judge).
Each worker also watches the deployments file and reloads in place.

Versions only move forward across workers too: each records the config versions it serves in a
ledger file private to this server (`cosa_guard.served`), and a replacement refuses to start on an
older config than the ledger holds.

Metrics: with `PROMETHEUS_MULTIPROC_DIR` set (the CLI sets a private one), prometheus_client
writes every worker's samples there and `/metrics` answers with all workers' sums, whichever
worker a scrape reaches.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

OPTIONS_ENV = "COSA_GUARD_SERVE"
APP_FACTORY = "cosa_guard.server.workers:create_worker_app"


@dataclass(frozen=True)
class WorkerOptions:
    """What each worker needs to build the app `cosa-guard serve` would build in one process."""

    deployments: str
    max_body_bytes: int
    watch_interval_s: float | None
    audit: str | None = None
    body_timeout_s: float = 30.0
    served_ledger: str | None = None  # the versions every worker serves (`cosa_guard.served`)
    cors_origins: list[str] = field(default_factory=list)
    log_level: str = "info"
    log_format: str = "text"

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> WorkerOptions:
        raw = os.environ.get(OPTIONS_ENV)
        if raw is None:
            raise RuntimeError(
                f"{OPTIONS_ENV} is not set: start workers with `cosa-guard serve --workers N`, "
                f"which passes its options to {APP_FACTORY}"
            )
        return cls(**json.loads(raw))


def create_worker_app() -> Any:
    """uvicorn's app factory in each worker process."""
    from cosa_guard.audit import JsonlAuditSink
    from cosa_guard.guard import Guard
    from cosa_guard.logs import configure_logging
    from cosa_guard.served import ServedLedger
    from cosa_guard.server.app import create_app

    options = WorkerOptions.from_env()
    configure_logging(options.log_level, options.log_format)  # a spawned worker starts unconfigured
    ledger = ServedLedger(options.served_ledger) if options.served_ledger else None
    guard = Guard.from_file(Path(options.deployments), ledger=ledger)  # the app's lifespan warms it up
    audit = JsonlAuditSink(options.audit) if options.audit else None
    return create_app(
        guard,
        max_body_bytes=options.max_body_bytes,
        body_timeout_s=options.body_timeout_s,
        watch_interval_s=options.watch_interval_s,
        # SIGHUP goes to the supervisor, which replaces the workers; a worker never sees it.
        reload_on_sighup=False,
        close_guard=True,
        audit=audit,
        close_audit=True,
        cors_origins=options.cors_origins,
    )
