"""A full guarded call on a real vLLM: `Guard.chat` and `Guard.stream` through a deployments file.

    python benchmarks/vllm_cpu_check.py --kind openai --model smollm2 --base-url http://127.0.0.1:8000/v1
    python benchmarks/vllm_cpu_check.py --kind vllm --model /path/to/model \\
        --engine-options '{"dtype": "bfloat16", "max_model_len": 2048, "enforce_eager": true}'

Run by benchmarks/vllm_cpu_check.sh inside its own vllm-cpu virtualenv (never in CI). It signs a
throwaway config and writes two deployments over the same backend spec, as a real
deployments.yaml would: `cascade` (the model generates, an LLM judge on the same model scores the
answer from its next-token logprobs, holdback streaming) and `cosalign` (the model as the primary
route); and `strict`, the cascade with a judge threshold of 0, where every answer violates, so the
refusal path and holdback's no-leak rule run on the real engine too. The 135M model's judgement
is not the point, only that every path runs: a call passes when its decision is `allowed` or
`refused`, never `failed`, and `strict` must refuse without releasing one character of model text.
Prints `name=value` lines, prefixed with `--prefix`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

from cosa_guard.config import SafetyConfig
from cosa_guard.guard import Guard
from cosa_guard.streaming import StreamFold
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import DecisionKind, GenerationParams, GuardResponse

CONFIG = SafetyConfig(
    id="vllm-check",
    version=1,
    text="A cooking assistant for a recipe site. Discuss food and cooking only.",
    refusal="Sorry, I can only help with cooking.",
)
QUESTION = [{"role": "user", "content": "Give me a short recipe for pancakes."}]


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": args.kind, "model": args.model, "timeout_s": 300}
    if args.kind == "openai":
        spec["base_url"] = args.base_url
    else:
        spec["options"] = json.loads(args.engine_options)
    return spec


def _deployments(folder: Path, spec: dict[str, Any]) -> Path:
    common: dict[str, Any] = {
        "judge": {"kind": "llm", "backend": spec},
        "injection": {"enabled": False},  # the detector needs the embed extra, absent from this venv
        "deadline_s": 600,  # CPU: a first call may wait behind the engine's warm-up
    }
    write_signed_deployment(
        folder,
        CONFIG,
        "cascade",
        routes={"fallback": spec},
        stream={"mode": "holdback", "window_chars": 40, "overlap_chars": 8},
        **common,
    )
    write_signed_deployment(folder, CONFIG, "cosalign", routes={"primary": spec}, **common)
    # Threshold 0: the judge finds every answer violating, so the refusal path runs for certain.
    path, _ = write_signed_deployment(
        folder,
        CONFIG,
        "strict",
        routes={"fallback": spec},
        stream={"mode": "holdback", "window_chars": 40, "overlap_chars": 8},
        **(common | {"judge": {"kind": "llm", "backend": spec, "threshold": 0.0}}),
    )
    return path


async def _stream(
    guard: Guard, deployment: str, params: GenerationParams
) -> tuple[list[str], float, GuardResponse]:
    """Released model text, ms to the first event (text or the decision), final response."""
    started = time.perf_counter()
    released: list[str] = []
    first_delta_ms = 0.0
    fold = StreamFold(guard.stream(deployment, QUESTION, params))
    async with aclosing(fold):
        async for text in fold.texts():
            first_delta_ms = first_delta_ms or (time.perf_counter() - started) * 1000
            released.append(text)
    first_delta_ms = first_delta_ms or (time.perf_counter() - started) * 1000
    return released, first_delta_ms, fold.answer().response


def _report(prefix: str, name: str, response: GuardResponse, elapsed: float) -> bool:
    ok = response.decision.kind is not DecisionKind.FAILED and bool(response.text.strip())
    print(f"{prefix}{name}_ok={int(ok)}")
    print(f"{prefix}{name}_decision={response.decision.label}")
    print(f"{prefix}{name}_route={response.route.value}")
    print(f"{prefix}{name}_ms={elapsed * 1000:.0f}")
    if response.verdict is not None:
        print(f"{prefix}{name}_judge_score={response.verdict.score:.3f}")
    print(f"# {name}: {response.text[:100]!r} {response.decision.detail[:200]}")
    return ok


async def main(args: argparse.Namespace) -> bool:
    spec = _spec(args)
    prefix = args.prefix
    with tempfile.TemporaryDirectory(prefix="cosa-guard-vllm-") as tmp:
        path = _deployments(Path(tmp), spec)
        started = time.perf_counter()
        # An in-process engine lives on the loop that starts it: start it here, on this loop, before
        # the guard's first call.
        guard = Guard.from_file(path)
        await guard.warm_up()
        print(f"{prefix}load_s={time.perf_counter() - started:.2f}")
        params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0)
        results = []
        try:
            for deployment in ("cascade", "cosalign"):
                started = time.perf_counter()
                response = await guard.chat(deployment, QUESTION, params)
                results.append(_report(prefix, f"{deployment}_chat", response, time.perf_counter() - started))

            started = time.perf_counter()
            deltas, first_delta_ms, final = await _stream(guard, "cascade", params)
            results.append(_report(prefix, "cascade_stream", final, time.perf_counter() - started))
            print(f"{prefix}cascade_stream_deltas={len(deltas)}")
            # holdback: the first text leaves only once a window of it has been judged
            print(f"{prefix}cascade_stream_first_delta_ms={first_delta_ms:.0f}")
            if final.decision.kind is DecisionKind.ALLOWED and "".join(deltas) != final.text:
                raise AssertionError("released deltas differ from the final text")

            started = time.perf_counter()
            response = await guard.chat("strict", QUESTION, params)
            _report(prefix, "strict_chat", response, time.perf_counter() - started)
            refused = (
                response.decision.label == "refused:output_violation" and response.text == CONFIG.refusal
            )
            print(f"{prefix}strict_chat_refused_ok={int(refused)}")
            deltas, _, final = await _stream(guard, "strict", params)
            leaked = sum(len(d) for d in deltas)  # the first window was judged violating: nothing may leave
            print(f"{prefix}strict_stream_decision={final.decision.label}")
            print(f"{prefix}strict_stream_leaked_chars={leaked}")
            results += [refused, leaked == 0 and final.decision.label == "refused:output_violation"]
        finally:
            await guard.aclose()
            if args.kind == "vllm":
                from cosa_guard.backends.vllm import clear_engine_cache

                clear_engine_cache()  # stop the engine's worker process before the loop closes
    return all(results)


if __name__ == "__main__":  # vLLM starts its engine with spawn
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kind", choices=["openai", "vllm"], required=True, help="the backend kind to route to"
    )
    parser.add_argument("--model", required=True, help="openai: the served model name; vllm: a model folder")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="openai: the vllm serve URL")
    parser.add_argument(
        "--engine-options", default="{}", help="vllm: AsyncEngineArgs fields as a JSON object"
    )
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--prefix", default="", help="prepended to every name=value line")
    sys.exit(0 if asyncio.run(main(parser.parse_args())) else 1)
