"""The evaluation runner: judged records per example, concurrency, resume after an interruption."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import BackendError
from cosa_guard.evaluation.dataset import EvalDataset, from_document
from cosa_guard.evaluation.judges import EvalJudge, embedded_eval_judge
from cosa_guard.evaluation.runner import judged, read_records, run
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.types import Decision, GuardResponse, RefusalReason, Route

REFUSAL = "I'm sorry, but I can't help with that request."


def dataset(n: int = 6) -> EvalDataset:
    return from_document(
        {
            "name": "t",
            "configs": [
                {"id": "game", "version": 1, "text": "Game studio.", "allow": ["violence"], "seen": True}
            ],
            "examples": [
                {"id": f"e{i}", "config": "game", "prompt": f"prompt {i}", "type": "allowed"}
                for i in range(n)
            ],
        }
    )


class FakeTarget:
    """Answers `prompt N` with a sword fight; blocks prompts listed in `block`; fails those in `fail`."""

    name = "fake"

    def __init__(self, block: frozenset[str] = frozenset(), fail: frozenset[str] = frozenset()) -> None:
        self.block, self.fail = block, fail
        self.seen: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def respond(self, config: SafetyConfig, prompt: str) -> GuardResponse:
        self.seen.append(prompt)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if prompt in self.fail:
            raise BackendError("model server went away")
        if prompt in self.block:
            decision = Decision.refused(RefusalReason.OUTPUT_VIOLATION)
            return GuardResponse(REFUSAL, decision, Route.CASCADE, "d", config.hash)
        text = f"The knight swings his sword ({prompt})."
        return GuardResponse(text, Decision.allowed(), Route.CASCADE, "d", config.hash)


def judge() -> EvalJudge:
    return embedded_eval_judge(ScriptedJudge(flags={"sword": "violence"}))


async def test_records_hold_the_answer_the_decision_and_the_judgement(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    result = await run(
        dataset(3), FakeTarget(block=frozenset({"prompt 1"})), judge(), out_path=out, progress=False
    )
    assert result.errors == 0
    assert [r["id"] for r in result.records] == ["e0", "e1", "e2"]  # dataset order, whatever finished first
    allowed, blocked = result.records[0], result.records[1]
    assert (
        allowed["decision"] == "allowed" and allowed["rating"] == 5 and allowed["categories"] == ["violence"]
    )
    assert blocked["decision"] == "refused:output_violation"
    assert blocked["rating"] == 0 and blocked["categories"] == []  # a guard refusal is recorded, not judged
    assert len(read_records(out)) == 3
    scored = judged(result.records, dataset(3))
    assert [e.score for e in scored] == [1.0, 0.0, 1.0]


async def test_concurrency_is_bounded() -> None:
    target = FakeTarget()
    await run(dataset(12), target, judge(), concurrency=3, progress=False)
    assert target.peak == 3


async def test_failed_examples_are_not_written_and_a_resume_retries_only_them(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    first = await run(
        dataset(), FakeTarget(fail=frozenset({"prompt 2", "prompt 4"})), judge(), out_path=out, progress=False
    )
    assert first.errors == 2 and len(first.records) == 4
    assert set(read_records(out)) == {"e0", "e1", "e3", "e5"}
    with out.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "e2", "torn')  # a crash in the middle of a write
    retry = FakeTarget()
    second = await run(dataset(), retry, judge(), out_path=out, resume=True, progress=False)
    assert sorted(retry.seen) == ["prompt 2", "prompt 4"]
    assert second.errors == 0 and [r["id"] for r in second.records] == [f"e{i}" for i in range(6)]
    assert set(read_records(out)) == {f"e{i}" for i in range(6)}


async def test_without_resume_the_output_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    await run(dataset(2), FakeTarget(), judge(), out_path=out, progress=False)
    target = FakeTarget()
    await run(dataset(2), target, judge(), out_path=out, progress=False)
    assert len(target.seen) == 2
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    assert all(json.loads(line)["target"] == "fake" for line in out.read_text(encoding="utf-8").splitlines())


async def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await run(dataset(1), FakeTarget(), judge(), concurrency=0, progress=False)


class CountingGrader:
    """Flags answers naming the listed prompts; counts its calls; raises for prompts in `fail`."""

    name = "counting"

    def __init__(self, flag: frozenset[str] = frozenset(), fail: frozenset[str] = frozenset()) -> None:
        self.flag, self.fail = flag, fail
        self.calls: list[str] = []

    async def complies(self, config: SafetyConfig, prompt: str, response: str) -> bool | None:
        self.calls.append(prompt)
        if prompt in self.fail:
            raise BackendError("grader model went away")
        return prompt not in self.flag


async def test_a_grader_grades_answered_examples_only() -> None:
    grader = CountingGrader(flag=frozenset({"prompt 2"}))
    target = FakeTarget(block=frozenset({"prompt 1"}))
    result = await run(dataset(3), target, judge(), progress=False, grader=grader)
    by_id = {r["id"]: r for r in result.records}
    assert by_id["e0"]["grader_complies"] is True and by_id["e2"]["grader_complies"] is False
    assert "grader_complies" not in by_id["e1"]  # refused by the guard: nothing to grade
    assert sorted(grader.calls) == ["prompt 0", "prompt 2"]


async def test_a_resume_with_a_grader_grades_old_answers_without_asking_the_target(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    await run(dataset(3), FakeTarget(), judge(), out_path=out, progress=False)
    target, grader = FakeTarget(), CountingGrader(fail=frozenset({"prompt 1"}))
    result = await run(dataset(3), target, judge(), out_path=out, resume=True, progress=False, grader=grader)
    assert target.seen == []
    assert result.errors == 1  # the grader failed on e1: left ungraded, retried next time
    assert [r.get("grader_complies") for r in result.records] == [True, None, True]
    assert read_records(out)["e0"]["grader_complies"] is True  # the last line of an id wins
    retry = CountingGrader()
    again = await run(dataset(3), target, judge(), out_path=out, resume=True, progress=False, grader=retry)
    assert retry.calls == ["prompt 1"] and again.errors == 0
