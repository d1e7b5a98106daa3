"""An ASGI app served by uvicorn on a free loopback port in a background thread, for tests and benchmarks.

    with serve_in_thread(create_app(guard)) as url:
        openai.OpenAI(base_url=url + "/v1", api_key=key).chat.completions.create(...)

The server runs its own event loop in the thread, as it would in production; leaving the block
shuts it down (lifespan shutdown included) and waits for the thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cosa_guard._optional import require

__all__ = ["free_port", "serve_in_thread", "worker_pids"]


def worker_pids(supervisor: int) -> set[int]:
    """Live child processes of `supervisor` (server workers), read from Linux's /proc; empty elsewhere.

    multiprocessing's resource tracker is a child too, and is left out.
    """
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == supervisor and fields[0] != "Z" and b"resource_tracker" not in cmdline:
            found.add(int(stat.parent.name))
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", startup_timeout_s: float = 10.0, **config: Any
) -> Iterator[str]:
    """Run `app` until the block ends; yields its base URL (`http://127.0.0.1:PORT`).

    `config` goes to `uvicorn.Config` (defaults: warning log level, lifespan on).
    """
    uvicorn = require("uvicorn", "server", "serving an app in a thread")
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **config}
    port = free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during startup; see its log above")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start within {startup_timeout_s:g}s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout_s)
