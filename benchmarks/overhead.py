"""Per-call overhead of the guard over a bare call of the same instant fake backend.

    python benchmarks/overhead.py --quick

The guarded call is the full pipeline a server runs: API-key lookup, the privilege rule, the
input guard's checks that need no ML model (when cosa_guard.injection.detector is installed),
the cascade route with an instant scripted judge behind the verdict cache, the deadline, a JSONL
audit record (written by the sink's thread) and Prometheus metrics on a private registry. The
bare call is `await backend.generate(...)` on the same backend. Prints `name=value` lines:

    overhead_median_ms, overhead_p95_ms, overhead_p99_ms   guarded minus bare, per call (cascade route)
    primary_overhead_median_ms                             the CoSAlign route, no judging
    core_overhead_median_ms                                the cascade route without the input guard
    calls_per_s_c50, core_calls_per_s_c50                  guarded calls per second, 50 concurrent callers
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cosa_guard.audit import JsonlAuditSink
from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.guard import Guard
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.metrics import Metrics, NoopMetrics, PrometheusMetrics
from cosa_guard.settings import BackendSpec, JudgeSpec
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import GenerationParams, Message

MESSAGES = [{"role": "user", "content": "Write the opening scene of a fantasy battle for my game."}]
ANSWER = "Steel rang against steel as the armies met in the valley below the ruined keep."


def _input_guard() -> tuple[Any, str]:
    try:
        module = importlib.import_module("cosa_guard.injection.detector")
    except ModuleNotFoundError:
        return None, "none"
    return module.default_input_guard(), "structural"


def _metrics() -> Metrics:
    try:
        prometheus = importlib.import_module("prometheus_client")
    except ModuleNotFoundError:
        return NoopMetrics()
    return PrometheusMetrics(prometheus.CollectorRegistry())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


async def run(calls: int, concurrent_calls: int, workdir: Path) -> dict[str, float | str]:
    config = SafetyConfig(id="bench", version=1, text="Fictional violence is fine.", allow=("violence",))
    routes = {
        "primary": {"kind": "scripted", "model": "primary"},
        "fallback": {"kind": "scripted", "model": "fallback"},
    }
    deployments = {  # id: (route, injection settings)
        "bench": ("fallback", {"classifier": False}),
        "bench-primary": ("primary", {"classifier": False}),
        "bench-core": ("fallback", {"enabled": False}),
    }
    for deployment_id, (route, injection) in deployments.items():
        path, key = write_signed_deployment(
            workdir, config, deployment_id=deployment_id, routes={route: routes[route]}, injection=injection
        )
        if deployment_id == "bench":
            api_key = key
    backend = ScriptedBackend([ANSWER], name="fake")
    judge = ScriptedJudge(flags={"FORBIDDEN": "weapons"})
    input_guard, input_kind = _input_guard()
    audit = JsonlAuditSink(workdir / "audit.jsonl")

    def backends(spec: BackendSpec, base: Path) -> ScriptedBackend:
        return backend

    def judges(spec: JudgeSpec, base: Path) -> ScriptedJudge:
        return judge

    guard = Guard(
        DeploymentRegistry.load(path),
        backend_factory=backends,
        judge_factory=judges,
        input_guard=input_guard,
        audit=audit,
        metrics=_metrics(),
    )
    bare_messages = [Message("user", MESSAGES[0]["content"])]
    params = GenerationParams()

    async def bare() -> object:
        return await backend.generate(bare_messages, params)

    async def guarded() -> object:
        deployment = guard.by_api_key(api_key)
        return await guard.chat(deployment.id, MESSAGES)

    async def primary() -> object:
        return await guard.chat("bench-primary", MESSAGES)

    async def core() -> object:
        return await guard.chat("bench-core", MESSAGES)

    response = await guarded()
    assert getattr(response, "text", None) == ANSWER, response  # the pipeline really allows it
    await _timed(guarded, min(calls, 500))  # warm-up
    # Interleaved blocks, so a burst of load from other processes hits every variant alike
    # instead of inflating whichever happened to run during it.
    variants = {"bare": bare, "guarded": guarded, "primary": primary, "core": core}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    block = 100
    for _ in range(max(1, calls // block)):
        for name, fn in variants.items():
            timings[name] += await _timed(fn, block)
    bare_ms, guarded_ms, primary_ms, core_ms = timings.values()
    bare_median = statistics.median(bare_ms)
    overhead = [g - bare_median for g in guarded_ms]

    per_worker = max(1, concurrent_calls // 50)

    async def throughput(call: Callable[[], Awaitable[object]]) -> float:
        async def worker() -> None:
            for _ in range(per_worker):
                await call()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(50)))
        return per_worker * 50 / (time.perf_counter() - start)

    calls_per_s = await throughput(guarded)
    core_calls_per_s = await throughput(core)
    await guard.aclose()
    audit.close()
    return {
        "input_guard": input_kind,
        "bare_median_ms": bare_median,
        "overhead_median_ms": statistics.median(overhead),
        "overhead_p95_ms": _percentile(overhead, 0.95),
        "overhead_p99_ms": _percentile(overhead, 0.99),
        "primary_overhead_median_ms": statistics.median(primary_ms) - bare_median,
        "core_overhead_median_ms": statistics.median(core_ms) - bare_median,
        "calls_per_s_c50": calls_per_s,
        "core_calls_per_s_c50": core_calls_per_s,
        "audit_lines": float(sum(1 for _ in (workdir / "audit.jsonl").open()))
        if (workdir / "audit.jsonl").exists()
        else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls: a run well under 60 s")
    parser.add_argument("--calls", type=int, default=None, help="sequential calls per measurement")
    args = parser.parse_args()
    calls = args.calls or (3_000 if args.quick else 30_000)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run(calls, calls * 2, Path(tmp)))
    for name, value in results.items():
        print(f"{name}={value:.4f}" if isinstance(value, float) else f"{name}={value}")


if __name__ == "__main__":
    main()
