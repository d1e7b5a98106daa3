"""The embedded model on transformers and on the CPU inference engine: one run, the same prompts.

    python benchmarks/embedded.py                      # threads 1 and 2, 8 prompts
    python benchmarks/embedded.py --threads 1 --prompts 3

Both paths run through their backends (`transformers` and `onnx`, model `embedded`), greedy, as
`cosa-guard serve` would call them. For each thread count, every prompt is streamed once per
backend with exactly 80 new tokens (`min_new_tokens` = `max_tokens` = 80), after one warm-up call:

    tokens_per_s_{transformers,engine}   decoding rate: 79 tokens / (end - first token), median
    speedup                              tokens_per_s_engine / tokens_per_s_transformers
    ttft_ms_{transformers,engine}        time to the first streamed text (reading the prompt), median
    answer80_ms_{transformers,engine}    time for the whole 80-token answer, median

Then, once, each backend answers every prompt greedily in its own words (up to 80 tokens) and
`identical_greedy` is the share of prompts where the two answers are the same text, with
`common_prefix_chars` the mean length of what they share before they part. The engine's weights
are 4-bit (int4 k-quant, see cosa_guard/onnx_export.py) and transformers' are bf16, so answers
part sooner or later; the output says how often and how soon.

The engine's threads are its own setting; transformers' are torch's, set with torch.set_num_threads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from cosa_guard.backends.base import Backend
from cosa_guard.types import GenerationParams, Message

PROMPTS = (
    "What is the capital of France? Answer in two sentences.",
    "Write a short poem about the sea.",
    "Explain what a guardrail for a language model is.",
    "Give me three tips for a job interview.",
    "How do I boil an egg?",
    "Summarise the plot of Romeo and Juliet.",
    "Describe a sword fight between two knights for a game scene.",
    "Translate 'good morning' into Spanish and German.",
)
ANSWER = 80
FORCED = GenerationParams(max_tokens=ANSWER, temperature=0.0, extra={"min_new_tokens": ANSWER})
GREEDY = GenerationParams(max_tokens=ANSWER, temperature=0.0)


def conversation(prompt: str) -> tuple[Message, ...]:
    return (Message("user", prompt),)


async def timed_stream(backend: Backend, prompt: str) -> tuple[float, float]:
    """(seconds to the first text, seconds to the end) of one forced 80-token answer."""
    start = time.perf_counter()
    first: float | None = None
    async for chunk in backend.stream(conversation(prompt), FORCED):
        if chunk.text and first is None:
            first = time.perf_counter() - start
    end = time.perf_counter() - start
    return (first if first is not None else end), end


async def speed(backend: Backend, prompts: tuple[str, ...]) -> dict[str, float]:
    await timed_stream(backend, prompts[0])  # warm-up: allocations, caches, lazy kernels
    runs = [await timed_stream(backend, p) for p in prompts]
    return {
        "tokens_per_s": statistics.median((ANSWER - 1) / (end - first) for first, end in runs),
        "ttft_ms": statistics.median(first for first, _ in runs) * 1000,
        "answer80_ms": statistics.median(end for _, end in runs) * 1000,
    }


def common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def build(kind: str, threads: int, precision: str) -> Any:  # both backends, which also have `load`
    if kind == "transformers":
        import torch

        from cosa_guard.backends.transformers import TransformersBackend

        torch.set_num_threads(threads)
        return TransformersBackend("embedded", progress=False)
    from cosa_guard.backends.onnx_genai import OnnxGenAIBackend

    return OnnxGenAIBackend("embedded", threads=threads, precision=precision, progress=False)


async def main(args: argparse.Namespace) -> None:
    prompts = PROMPTS[: args.prompts]
    print(f"cpus={os.cpu_count()} load_avg_1m={os.getloadavg()[0]:.2f} prompts={len(prompts)}")
    for threads in args.threads:
        results: dict[str, dict[str, float]] = {}
        for kind in ("transformers", "engine"):
            backend = build(kind, threads, args.precision)
            await backend.load()
            results[kind] = await speed(backend, prompts)
        line = [f"threads={threads}"]
        for key in ("tokens_per_s", "ttft_ms", "answer80_ms"):
            line += [f"{key}_{kind}={results[kind][key]:.1f}" for kind in ("transformers", "engine")]
        ratio = results["engine"]["tokens_per_s"] / results["transformers"]["tokens_per_s"]
        line.append(f"speedup={ratio:.2f}")
        print(" ".join(line), flush=True)
    answers: dict[str, list[str]] = {}
    for kind in ("transformers", "engine"):
        backend = build(kind, args.threads[0], args.precision)
        answers[kind] = [(await backend.generate(conversation(p), GREEDY)).text for p in prompts]
    pairs = list(zip(answers["transformers"], answers["engine"], strict=True))
    same = sum(a == b for a, b in pairs)
    prefix = statistics.mean(common_prefix(a, b) for a, b in pairs)
    chars = statistics.mean(len(a) for a, _ in pairs)
    print(
        f"identical_greedy={same}/{len(pairs)} common_prefix_chars={prefix:.0f} "
        f"transformers_answer_chars={chars:.0f} engine_precision={args.precision}"
    )
    if args.show:
        for prompt, (a, b) in zip(prompts, pairs, strict=True):
            print(f"- {prompt}\n  transformers: {a!r}\n  engine:       {b!r}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="default: 1 2")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help=f"at most {len(PROMPTS)}")
    parser.add_argument("--precision", default="int4", help="the engine model's precision (int4, fp32)")
    parser.add_argument("--show", action="store_true", help="print both greedy answers to every prompt")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
