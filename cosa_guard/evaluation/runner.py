"""Running a dataset through a target (a guarded deployment) and judging every answer.

The runner is async with bounded concurrency, shows a progress bar, and appends one JSON line
per finished example to its output file as soon as it is judged, keyed by example id. With
`resume=True` the examples already in the file are kept and skipped, so an interrupted run
continues where it stopped. An example whose target or judge raised is not written (it is
counted in `RunResult.errors`), so a resumed run retries it.

When the guard refuses or fails, the caller receives the deployment's refusal text: that
answer is recorded as a refusal (helpfulness 0, no harmful category) without asking the judge.

With a `grader` (a second opinion that is not the judge under test, see `graders.py`), every
answered example also records `grader_complies`; on a resumed run, answers recorded without it
are graded (the target is not asked again) and their record is appended anew, the last line of
an id winning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from cosa_guard._optional import require
from cosa_guard.config import SafetyConfig
from cosa_guard.evaluation.dataset import EvalDataset, EvalExample
from cosa_guard.evaluation.graders import Grader
from cosa_guard.evaluation.judges import EvalJudge
from cosa_guard.evaluation.scoring import JudgedExample
from cosa_guard.types import GuardResponse

log = logging.getLogger(__name__)


class Target(Protocol):
    """What is evaluated: answers one prompt under one config, through the guard."""

    name: str

    async def respond(self, config: SafetyConfig, prompt: str) -> GuardResponse: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    target: str
    records: tuple[dict[str, Any], ...]
    errors: int = 0


def answered(record: Mapping[str, Any]) -> bool:
    """True when the guard let the answer through, so it was judged (a refusal was not)."""
    return str(record["decision"]) == "allowed"


def judged(records: Iterable[Mapping[str, Any]], dataset: EvalDataset) -> list[JudgedExample]:
    """Turn output records back into scoring inputs (allowed sets and seen marks from the dataset)."""
    out = []
    for r in records:
        entry = dataset.configs[r["config"]]
        cats = r["categories"]
        out.append(
            JudgedExample(
                example_id=r["id"],
                config_id=r["config"],
                allowed=frozenset(entry.config.allow),
                rating=r["rating"],
                categories=None if cats is None else frozenset(cats),
                seen=entry.seen,
                type=r.get("type"),
            )
        )
    return out


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Records already in an output file, by example id; a torn last line (a crash mid-write) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            done[record["id"]] = record
    return done


def _open_sink(path: Path, *, append: bool) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = append and path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    sink = path.open("a" if append else "w", encoding="utf-8")
    if torn:  # end the half-written line of a crashed run, or the next record would be glued to it
        sink.write("\n")
    return sink


async def _one(
    example: EvalExample, config: SafetyConfig, target: Target, judge: EvalJudge, grader: Grader | None
) -> dict[str, Any]:
    started = time.perf_counter()
    response = await target.respond(config, example.prompt)
    latency_ms = (time.perf_counter() - started) * 1000
    record: dict[str, Any] = {
        "id": example.id,
        "config": example.config_id,
        "type": example.type,
        "target": target.name,
        "prompt": example.prompt,
        "response": response.text,
        "decision": response.decision.label,
        "route": response.route.value,
        "guard_categories": sorted(response.categories),
        "guard_rule": response.rule,
        "rules_reviewed": response.rules_reviewed,
        "latency_ms": round(latency_ms, 1),
    }
    if response.decision.is_allowed:
        if grader is None:
            rating = await judge.rate(config, example.prompt, response.text)
        else:
            rating, graded = await asyncio.gather(
                judge.rate(config, example.prompt, response.text),
                grader.complies(config, example.prompt, response.text),
            )
            record["grader_complies"] = graded
        record |= {
            "rating": rating.helpfulness,
            "categories": None if rating.categories is None else sorted(rating.categories),
            "judge_raw": rating.raw,
        }
    else:
        record |= {
            "rating": 0,
            "categories": [],
            "judge_raw": {"note": "not judged: the guard did not answer"},
        }
    return record


async def run(
    dataset: EvalDataset,
    target: Target,
    judge: EvalJudge,
    *,
    out_path: Path | None = None,
    resume: bool = False,
    concurrency: int = 4,
    progress: bool = True,
    grader: Grader | None = None,
) -> RunResult:
    """Answer and judge every example of `dataset` through `target`; see the module docstring."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    done = read_records(out_path) if out_path is not None and resume else {}
    todo = [e for e in dataset.examples if e.id not in done]
    records: dict[str, dict[str, Any]] = {
        k: v for k, v in done.items() if k in {e.id for e in dataset.examples}
    }
    ungraded = [
        r for r in records.values() if grader is not None and answered(r) and "grader_complies" not in r
    ]
    errors = 0
    semaphore = asyncio.Semaphore(concurrency)
    tqdm = require("tqdm", "eval", "evaluation progress bars").tqdm
    bar = tqdm(total=len(dataset), initial=len(records), desc=target.name, unit="ex", disable=not progress)
    sink = _open_sink(out_path, append=resume) if out_path is not None else None

    def failed(example_id: str, exc: Exception) -> None:
        nonlocal errors
        errors += 1
        log.warning(
            "example %s failed (%s: %s); it will be retried on --resume", example_id, type(exc).__name__, exc
        )

    def keep(record: dict[str, Any]) -> None:
        records[record["id"]] = record
        if sink is not None:
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()

    async def work(example: EvalExample) -> None:
        async with semaphore:
            try:
                record = await _one(example, dataset.configs[example.config_id].config, target, judge, grader)
            except Exception as exc:  # one broken example must not lose the others' results
                failed(example.id, exc)
                return
            finally:
                bar.update(1)
        keep(record)

    async def grade(record: dict[str, Any]) -> None:
        assert grader is not None  # only records to grade are passed here
        async with semaphore:
            config = dataset.configs[record["config"]].config
            try:
                graded = await grader.complies(config, record["prompt"], record["response"])
            except Exception as exc:  # as for an example: recorded ungraded, retried next time
                failed(record["id"], exc)
                return
        keep(record | {"grader_complies": graded})

    try:
        await asyncio.gather(*(work(e) for e in todo), *(grade(r) for r in ungraded))
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    ordered = tuple(records[e.id] for e in dataset.examples if e.id in records)
    return RunResult(target.name, ordered, errors)
