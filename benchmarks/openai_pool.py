"""The `openai` backend's two transports against httpx's default one, at many concurrent calls.

    python benchmarks/openai_pool.py --quick       # < 60 s
    python benchmarks/openai_pool.py --concurrency 16

The fake upstream of benchmarks/server.py (a fixed completion, no model) runs in its own process;
this process makes `OpenAIBackend.generate` calls to it from N concurrent callers through each
of: the aiohttp transport (`http: aiohttp`, the default when aiohttp is installed), the backend's
httpcore pool (`http: httpx`, `cosa_guard/backends/_http_pool.py`) and httpx's default transport
(httpcore's `AsyncConnectionPool`), alternating rounds so all see the same machine load. Prints
`name=value` lines per transport (`aiohttp_`, `pooled_`, `httpx_`): calls per second, median /
p99 / max latency and CPU time of this process per call, then `cpu_per_call_ratio_<name>` and
`p99_ratio_<name>` (httpx's default / that transport).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import httpx

from cosa_guard.backends.openai import OpenAIBackend
from cosa_guard.testing.server import free_port
from cosa_guard.types import GenerationParams, Message

sys.path.insert(0, str(Path(__file__).parent))
from server import run_upstream, wait_ready  # the same fake upstream as the server benchmark

MESSAGES = (Message("user", "Write the opening line of a duel scene."),)


POOLS = ("aiohttp", "pooled", "httpx")


def backend(url: str, pool: str, max_connections: int) -> OpenAIBackend:
    transport = None
    if pool == "httpx":
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        transport = httpx.AsyncHTTPTransport(limits=limits)
    return OpenAIBackend(
        "fake",
        base_url=url,
        max_retries=0,
        max_connections=max_connections,
        http="aiohttp" if pool == "aiohttp" else "httpx",
        transport=transport,
    )


async def round_of_calls(b: OpenAIBackend, concurrency: int, calls: int) -> tuple[list[float], float, float]:
    """Latencies, wall time and this process's CPU time (s) of `calls` calls, `concurrency` at once."""
    latencies: list[float] = []
    remaining = calls

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await b.generate(MESSAGES, GenerationParams())
            latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, time.perf_counter() - wall, time.process_time() - cpu


async def measure(url: str, concurrency: int, calls: int, rounds: int) -> dict[str, float]:
    backends = {pool: backend(url, pool, max(concurrency, 1)) for pool in POOLS}
    totals: dict[str, tuple[list[float], float, float]] = {pool: ([], 0.0, 0.0) for pool in backends}
    try:
        for b in backends.values():  # warm up: open the connections
            await round_of_calls(b, concurrency, 2 * concurrency)
        for _ in range(rounds):
            for pool, b in backends.items():
                latencies, wall, cpu = await round_of_calls(b, concurrency, calls)
                seen, total_wall, total_cpu = totals[pool]
                totals[pool] = (seen + latencies, total_wall + wall, total_cpu + cpu)
    finally:
        for b in backends.values():
            await b.aclose()
    results: dict[str, float] = {}
    for pool, (latencies, wall, cpu) in totals.items():
        ordered = sorted(latencies)
        results[f"{pool}_c{concurrency}_calls_per_s"] = len(ordered) / wall
        results[f"{pool}_c{concurrency}_median_ms"] = statistics.median(ordered) * 1000
        results[f"{pool}_c{concurrency}_p99_ms"] = ordered[int(0.99 * (len(ordered) - 1))] * 1000
        results[f"{pool}_c{concurrency}_max_ms"] = ordered[-1] * 1000
        results[f"{pool}_c{concurrency}_cpu_us_per_call"] = cpu / len(ordered) * 1e6
    prefix = f"_c{concurrency}_"
    for pool in POOLS[:-1]:
        results[f"cpu_per_call_ratio_{pool}"] = (
            results[f"httpx{prefix}cpu_us_per_call"] / results[f"{pool}{prefix}cpu_us_per_call"]
        )
        results[f"p99_ratio_{pool}"] = results[f"httpx{prefix}p99_ms"] / results[f"{pool}{prefix}p99_ms"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls: finishes in well under 60 s")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent callers (default: %(default)s)"
    )
    parser.add_argument(
        "--calls", type=int, default=None, help="calls per round and pool (default 2000; --quick 500)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5; --quick 3)")
    args = parser.parse_args(argv)
    calls = args.calls or (500 if args.quick else 2000)
    rounds = args.rounds or (3 if args.quick else 5)

    port = free_port()
    upstream = multiprocessing.get_context("spawn").Process(
        target=run_upstream, args=(port, 0.0), daemon=True
    )
    upstream.start()
    try:
        asyncio.run(wait_ready(f"http://127.0.0.1:{port}/"))
        results = asyncio.run(measure(f"http://127.0.0.1:{port}/v1", args.concurrency, calls, rounds))
    finally:
        upstream.terminate()
        upstream.join(10)
    print(f"calls_per_round={calls}")
    print(f"rounds={rounds}")
    for name, value in results.items():
        print(f"{name}={value:.3f}" if "ratio" in name else f"{name}={value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
