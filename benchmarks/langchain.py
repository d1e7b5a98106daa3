"""Per-call overhead of `GuardedChatModel` over a bare call of the same instant LangChain fake model.

    python benchmarks/langchain.py --quick

The guarded call is LangChain's own machinery (callbacks, message conversion) around the full
cascade route of a real signed deployment: the inner model answers, an instant scripted judge
rules behind the verdict cache, the guard stamps its metadata. The input guard is off here (its
cost is `benchmarks/overhead.py`'s). The bare call is `await model.ainvoke(...)` on a model of
the same kind. Prints `name=value` lines:

    langchain_overhead_median_ms, langchain_overhead_p95_ms     ainvoke, guarded minus bare
    langchain_sync_overhead_median_ms                           invoke (the model through its own invoke)
    langchain_stream_overhead_median_ms_<mode>                  a whole astream, per stream mode
    langchain_tools_overhead_median_ms                          ainvoke with tools bound, a tool call answer
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cosa_guard_langchain import GuardedChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import Runnable

from cosa_guard.config import SafetyConfig
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.metrics import NoopMetrics
from cosa_guard.testing.deployments import write_signed_deployment

ANSWER = (
    "The two armies met at dawn on the frozen river. Swords rang, banners fell, and by noon the "
    "old king's guard had broken the siege line. " * 3
)
QUESTION = [HumanMessage("Write the opening scene of a fantasy battle for my game.")]
CALL = {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}


class ToolModel(GenericFakeChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[Any, Any]:
        return self.bind(tools=list(tools), **kwargs)


def model(reply: str | AIMessage = ANSWER) -> ToolModel:
    return ToolModel(messages=itertools.repeat(reply))


def deployment_file(workdir: Path, mode: str) -> Path:
    config = SafetyConfig(id="game", version=1, text="Fictional violence is fine.", allow=("violence",))
    path, _ = write_signed_deployment(
        workdir / mode,
        config,
        stream={"mode": mode},
        injection={"enabled": False},
        cache={"maxsize": 0},  # judge every call: the cache would hide the judged path
    )
    return path


def guarded(path: Path, inner: ToolModel) -> GuardedChatModel:
    return GuardedChatModel.from_deployments(
        inner, path, "game", judge=ScriptedJudge(flags={"FORBIDDEN": "weapons"}), metrics=NoopMetrics()
    )


async def paired_ms(
    bare: Callable[[], Awaitable[Any]], wrapped: Callable[[], Awaitable[Any]], n: int
) -> list[float]:
    """Guarded minus bare, call by call (interleaved so both see the same machine load)."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await bare()
        middle = time.perf_counter()
        await wrapped()
        out.append(((time.perf_counter() - middle) - (middle - start)) * 1000.0)
    return out


async def consume(runnable: Runnable[Any, Any]) -> None:
    async for _ in runnable.astream(QUESTION):
        pass


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


async def run(calls: int, workdir: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    path = deployment_file(workdir, "buffer")
    bare, wrapped = model(), guarded(path, model())
    for _ in range(5):  # warm-up: imports, first-call caches
        await wrapped.ainvoke(QUESTION)
    samples = await paired_ms(lambda: bare.ainvoke(QUESTION), lambda: wrapped.ainvoke(QUESTION), calls)
    results["langchain_overhead_median_ms"] = statistics.median(samples)
    results["langchain_overhead_p95_ms"] = p(samples, 95)

    loop = asyncio.get_running_loop()

    def sync_pair() -> list[float]:
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            bare.invoke(QUESTION)
            middle = time.perf_counter()
            wrapped.invoke(QUESTION)
            out.append(((time.perf_counter() - middle) - (middle - start)) * 1000.0)
        return out

    results["langchain_sync_overhead_median_ms"] = statistics.median(
        await loop.run_in_executor(None, sync_pair)
    )

    for mode in ("buffer", "holdback", "optimistic"):
        streamed = guarded(deployment_file(workdir, mode), model())
        samples = await paired_ms(lambda: consume(bare), lambda s=streamed: consume(s), calls)  # type: ignore[misc]
        results[f"langchain_stream_overhead_median_ms_{mode}"] = statistics.median(samples)

    tool_bare = model(AIMessage(content="", tool_calls=[CALL])).bind_tools([])
    tool_wrapped = guarded(path, model(AIMessage(content="", tool_calls=[CALL]))).bind_tools([])
    samples = await paired_ms(
        lambda: tool_bare.ainvoke(QUESTION), lambda: tool_wrapped.ainvoke(QUESTION), calls
    )
    results["langchain_tools_overhead_median_ms"] = statistics.median(samples)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (about 10 s)")
    parser.add_argument(
        "--calls", type=int, default=None, help="calls per measurement (default 500, quick 100)"
    )
    args = parser.parse_args()
    calls = args.calls or (100 if args.quick else 500)
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run(calls, Path(tmp)))
    for name, value in results.items():
        print(f"{name}={value:.3f}")


if __name__ == "__main__":
    main()
