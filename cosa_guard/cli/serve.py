"""`cosa-guard serve`: the OpenAI-compatible guarded chat server."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path
from typing import Any

ENV_PREFIX = "COSA_GUARD_"

DESCRIPTION = """\
Serve guarded chat completions over OpenAI's HTTP API.

  cosa-guard serve                             the demo: a game-studio deployment on the embedded
                                               model (signed at first run on this machine); prints
                                               its API key as `api_key=...`
  cosa-guard serve --deployments deployments.yaml --host 0.0.0.0 --port 8080

Point any OpenAI client at http://HOST:PORT/v1 with a deployment's API key: the key selects
the deployment and its signed safety config; requests can never choose or change a config.
Endpoints: POST /v1/chat/completions (also with "stream": true), GET /v1/models, /healthz,
/readyz, /metrics (Prometheus). Each answer carries the guard's decision in `finish_reason`
("stop" / "content_filter"), an extra `cosa_guard` field, `system_fingerprint` and the
x-cosa-guard-decision header.

Every option can also be set in the environment (COSA_GUARD_<OPTION>, e.g. COSA_GUARD_PORT=9000,
COSA_GUARD_CORS_ORIGINS=https://a.example,https://b.example); a flag wins over the environment.

Send SIGHUP (kill -HUP PID) or edit the deployments file or a bundle to reload; a config that
fails to verify never replaces the last good one. `--workers N` runs N processes on one port
(one process serves about 1,500 calls/s per core); SIGHUP then replaces them one at a time, and a
replacement whose configs fail to verify never takes over. See docs/server.md.
"""


_GRACE_S = 10


def _env(option: str, default: Any = None) -> Any:
    """The default of `--option`: COSA_GUARD_OPTION when set (argparse parses it like a typed value)."""
    return os.environ.get(ENV_PREFIX + option.upper().replace("-", "_"), default)


def _env_help(option: str) -> str:
    return f"env {ENV_PREFIX}{option.upper().replace('-', '_')}"


def register(subparsers: Any) -> None:
    from cosa_guard.cli import add_logging_options
    from cosa_guard.cli._guarded import add_deployments_option

    parser = subparsers.add_parser(
        "serve",
        help="serve guarded chat completions over OpenAI's HTTP API (the demo when no --deployments)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_deployments_option(parser, env=ENV_PREFIX + "DEPLOYMENTS")
    parser.add_argument(
        "--host",
        default=_env("host", "127.0.0.1"),
        help=f"address to listen on ({_env_help('host')}; default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_env("port", 8080),
        help=f"port to listen on ({_env_help('port')}; default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env("max-body-bytes", 1 << 20),
        metavar="N",
        help=f"larger request bodies get 413 ({_env_help('max-body-bytes')}; default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=_env("body-timeout", 30.0),
        metavar="SECONDS",
        help=f"a request body that takes longer to arrive gets 408 ({_env_help('body-timeout')}; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=_env("watch-interval", 2.0),
        metavar="SECONDS",
        help="how often to check the deployments file and bundles for changes; 0 turns it off "
        f"({_env_help('watch-interval')}; default: %(default)s)",
    )
    parser.add_argument(
        "--audit",
        type=Path,
        default=_env("audit"),
        metavar="FILE",
        help="append a JSON line for every request refused before it reached the guard (bad API key, "
        "malformed body, wrong model); calls that reach the guard go to each deployment's audit.path "
        f"({_env_help('audit')})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_env("workers", 1),
        metavar="N",
        help="server processes sharing the port, each with its own guard and models; about one per "
        f"core for throughput ({_env_help('workers')}; default: %(default)s)",
    )
    parser.add_argument(
        "--worker-start-timeout",
        type=float,
        default=_env("worker-start-timeout", 120.0),
        metavar="SECONDS",
        help="with --workers: how long a worker may take to load its models and answer, at a SIGHUP "
        f"restart and when the supervisor checks a worker is alive ({_env_help('worker-start-timeout')}; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (e.g. https://chat.example.com, or * for any) call the "
        f"server; repeat for more (env {ENV_PREFIX}CORS_ORIGINS, comma-separated; default: none)",
    )
    add_logging_options(parser, command=True)
    parser.set_defaults(func=run, command_log_level="info")


def run(args: argparse.Namespace) -> int:
    from cosa_guard._optional import require

    uvicorn = require("uvicorn", "server", "cosa-guard serve")
    from cosa_guard.audit import JsonlAuditSink
    from cosa_guard.cli._guarded import resolve
    from cosa_guard.guard import Guard
    from cosa_guard.server.app import create_app

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.body_timeout <= 0 or args.worker_start_timeout <= 0:
        print("error: --body-timeout and --worker-start-timeout must be positive", file=sys.stderr)
        return 2
    args.cors_origin = _cors_origins(args.cors_origin)
    if problem := _port_problem(args.host, args.port):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    target = resolve(args.deployments)
    if target.demo_id is not None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: the demo key is stored in clear; {args.host} exposes it beyond this machine",
            file=sys.stderr,
        )
    if args.workers > 1:
        _announce(args, target)
        return _run_workers(args, target.path)
    guard = Guard.from_file(target.path)  # the app's lifespan loads its local models
    audit = JsonlAuditSink(args.audit) if args.audit is not None else None
    app = create_app(
        guard,
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout,
        watch_interval_s=args.watch_interval or None,
        close_guard=True,
        audit=audit,
        cors_origins=args.cors_origin,
    )
    _announce(args, target)
    try:
        # Ctrl-C lets calls in flight finish for a while, then cancels them (audited as cancelled).
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            log_config=None,  # uvicorn's records go through the handler `cosa-guard` configured
            timeout_graceful_shutdown=_GRACE_S,
        )
    finally:
        if audit is not None:
            audit.close()
    return 0


def _run_workers(args: argparse.Namespace, deployments: Path) -> int:
    """uvicorn's supervisor over `args.workers` processes; each builds its own guard from the environment."""
    import os
    import tempfile

    from cosa_guard._optional import require
    from cosa_guard.deployments import DeploymentRegistry
    from cosa_guard.metrics import MULTIPROC_ENV
    from cosa_guard.server.workers import APP_FACTORY, OPTIONS_ENV, WorkerOptions

    uvicorn = require("uvicorn", "server", "cosa-guard serve")
    DeploymentRegistry.load(deployments)  # a config that fails to verify stops here, not in N workers
    with (
        tempfile.TemporaryDirectory(prefix="cosa-guard-metrics-") as metrics_dir,
        tempfile.TemporaryDirectory(prefix="cosa-guard-served-") as served_dir,
    ):
        options = WorkerOptions(
            deployments=str(deployments.resolve()),
            max_body_bytes=args.max_body_bytes,
            body_timeout_s=args.body_timeout,
            watch_interval_s=args.watch_interval or None,
            audit=str(args.audit.resolve()) if args.audit is not None else None,
            served_ledger=str(Path(served_dir) / "served.json"),
            cors_origins=list(args.cors_origin),
            log_level=args.log_level,
            log_format=args.log_format,
        )
        os.environ[OPTIONS_ENV] = options.to_env()
        os.environ.setdefault(MULTIPROC_ENV, metrics_dir)  # the workers inherit both at spawn
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            log_config=None,
            timeout_graceful_shutdown=_GRACE_S,
            # A replacement that loads models for longer than uvicorn's 5 s would be killed, and
            # the SIGHUP restart abandoned with the new configs unserved.
            timeout_worker_healthcheck=args.worker_start_timeout,
        )
    return 0


def _cors_origins(given: list[str] | None) -> list[str]:
    """`--cors-origin` flags, else COSA_GUARD_CORS_ORIGINS split at commas."""
    if given is not None:
        return given
    return [origin.strip() for origin in _env("cors-origins", "").split(",") if origin.strip()]


def _announce(args: argparse.Namespace, target: Any) -> None:
    """Where to point a client, and the demo's key, before the server starts."""
    base_url = f"http://{_url_host(args.host)}:{args.port}/v1"
    print(f"deployments={target.path}")
    print(f"base_url={base_url}")
    if target.api_key is not None:
        print(f"model={target.demo_id}")
        print(f"api_key={target.api_key}")
        print(
            f"try: curl {base_url}/chat/completions -H 'Authorization: Bearer {target.api_key}' "
            "-H 'Content-Type: application/json' "
            f"""-d '{{"model": "{target.demo_id}", "messages": [{{"role": "user", "content": "Hello"}}]}}'"""
        )
    sys.stdout.flush()


def _port_problem(host: str, port: int) -> str | None:
    """Say so before loading models when the port is taken, rather than after."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; pick another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror}; check --host and --port"
    return None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
