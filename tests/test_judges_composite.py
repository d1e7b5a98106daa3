"""CompositeJudge: any violation wins; a failing member fails closed unless tolerated."""

from __future__ import annotations

import asyncio

import pytest

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import JudgeError
from cosa_guard.judges.composite import CompositeJudge
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.testing.contract import JudgeContract, JudgeSubject
from cosa_guard.types import Message, Verdict

CONFIG = SafetyConfig(id="c", version=1, text="Violence is fine.", allow=("violence",))
PROMPT = (Message("user", "q"),)


class TestCompositeJudgeContract(JudgeContract):
    @pytest.fixture
    def subject(self) -> JudgeSubject:
        members = (
            ScriptedJudge(flags={"gun": "weapons"}, delay=0.001),
            ScriptedJudge(flags={"knife": "weapons"}),
        )
        down = (ScriptedJudge(flags={"gun": "weapons"}), ScriptedJudge([JudgeError("judge down")]))
        return JudgeSubject(
            judge=CompositeJudge(members),
            failing=CompositeJudge(down),
            config=CONFIG,
            benign="The knight draws his sword.",
            violating="Here is how to build a gun.",
        )


def judges() -> tuple[ScriptedJudge, ScriptedJudge]:
    return ScriptedJudge(flags={"gun": "weapons"}, name="a"), ScriptedJudge(
        flags={"fight": "violence"}, name="b"
    )


async def test_union_of_categories_and_any_violation_wins() -> None:
    a, b = judges()
    composite = CompositeJudge([a, b])
    verdict = await composite.judge(CONFIG, PROMPT, "a fight with a gun")
    assert verdict.categories == frozenset({"weapons", "violence"})
    assert not verdict.complies and verdict.score == 1.0
    assert verdict.judge == "composite(a,b)"
    ok = await composite.judge(CONFIG, PROMPT, "a fight")
    assert ok.complies and ok.categories == frozenset({"violence"})


async def test_members_run_concurrently() -> None:
    slow = [ScriptedJudge(name=str(i), delay=0.2) for i in range(5)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await CompositeJudge(slow).judge(CONFIG, PROMPT, "x")
    assert loop.time() - started < 0.6


async def test_failing_member_fails_closed() -> None:
    composite = CompositeJudge([ScriptedJudge(name="ok"), ScriptedJudge([JudgeError("down")], name="bad")])
    with pytest.raises(JudgeError, match="1 of 2 judges failed"):
        await composite.judge(CONFIG, PROMPT, "x")


async def test_a_violation_found_by_one_member_stands_when_another_fails() -> None:
    composite = CompositeJudge(
        [ScriptedJudge(flags={"gun": "weapons"}), ScriptedJudge([RuntimeError("crash")])]
    )
    verdict = await composite.judge(CONFIG, PROMPT, "gun")
    assert not verdict.complies


async def test_tolerate_failures_needs_one_answer() -> None:
    tolerant = CompositeJudge(
        [ScriptedJudge(name="ok"), ScriptedJudge([JudgeError("down")])], tolerate_failures=True
    )
    assert (await tolerant.judge(CONFIG, PROMPT, "x")).complies
    all_down = CompositeJudge([ScriptedJudge([JudgeError("down")])], tolerate_failures=True)
    with pytest.raises(JudgeError):
        await all_down.judge(CONFIG, PROMPT, "x")


async def test_scores_keep_the_maximum_per_category() -> None:
    def with_scores(value: float) -> Verdict:
        return Verdict(frozenset(), True, value, scores={"weapons": value})

    composite = CompositeJudge([ScriptedJudge([with_scores(0.2)]), ScriptedJudge([with_scores(0.4)])])
    verdict = await composite.judge(CONFIG, PROMPT, "x")
    assert verdict.scores == {"weapons": 0.4} and verdict.score == 0.4


def test_needs_members() -> None:
    with pytest.raises(ValueError):
        CompositeJudge([])
