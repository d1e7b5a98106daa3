"""Step 2, responses: several candidate answers per (config, prompt) from any Backend.

Real runs point this at a strong, permissive generator (a vLLM or OpenAI-compatible server) so
the candidates span refusals, allowed harms and disallowed harms; smoke tests use a local model
or a scripted backend. Output is appended line by line, so an interrupted run resumes where it
stopped and never pays twice for a finished candidate.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosa_guard.backends.base import Backend
from cosa_guard.errors import BackendError
from cosa_guard.types import GenerationParams, Message
from cosa_guard_training.jsonl import append_resumable
from cosa_guard_training.synth import ConfigRow

# The paper adds answers generated under a plain assistant prompt: they tend to be safe or refusing.
VANILLA_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True, slots=True)
class Job:
    key: str
    candidate: int
    prompt: str
    system_prompt: str


def plan_jobs(configs: Sequence[ConfigRow], candidates: int, *, vanilla: bool) -> list[Job]:
    """Every (config, candidate) to generate, plus one vanilla-prompt answer per prompt when asked."""
    jobs = [Job(c.key, i, c.prompt, c.system_prompt) for c in configs for i in range(candidates)]
    if vanilla:
        for prompt in dict.fromkeys(c.prompt for c in configs):
            key = "vanilla-" + hashlib.sha256(prompt.encode()).hexdigest()[:16]
            jobs.append(Job(key, 0, prompt, VANILLA_SYSTEM))
    return jobs


def candidate_key(row: Mapping[str, Any]) -> tuple[str, int]:
    """What identifies a response (and its label): the config row's key and the candidate number."""
    return str(row["key"]), int(row["candidate"])


async def generate_responses(
    configs: Sequence[ConfigRow],
    backend: Backend,
    output: str | Path,
    *,
    candidates: int = 2,
    params: GenerationParams | None = None,
    concurrency: int = 4,
    vanilla: bool = False,
    seed: int = 0,
) -> tuple[int, int]:
    """Generate the candidates missing from `output` (JSONL, appended); returns (written, failed).

    A candidate whose call fails is not written, so the next run retries it; a run in which
    every call fails raises, because an empty response file would silently yield no pairs.
    """
    base = params or GenerationParams(max_tokens=256, temperature=1.0, top_p=0.95)
    errors: list[str] = []

    async def one(job: Job) -> dict[str, Any] | None:
        messages = (Message("system", job.system_prompt), Message("user", job.prompt))
        # Distinct seeds per candidate: a seeded sampler would otherwise return the same text twice.
        call = dataclasses.replace(base, seed=seed + job.candidate)
        try:
            text = (await backend.generate(messages, call)).text
        except BackendError as exc:
            errors.append(str(exc))
            return None
        return {
            "key": job.key,
            "candidate": job.candidate,
            "model": backend.name,
            "prompt": job.prompt,
            "system_prompt": job.system_prompt,
            "response": text,
        }

    jobs = plan_jobs(configs, candidates, vanilla=vanilla)
    written, failed, _ = await append_resumable(
        jobs,
        one,
        output,
        key=candidate_key,
        item_key=lambda j: (j.key, j.candidate),
        desc="responses",
        concurrency=concurrency,
    )
    if failed and not written:
        raise BackendError(f"every one of {failed} generation calls failed; first error: {errors[0]}")
    return written, failed
