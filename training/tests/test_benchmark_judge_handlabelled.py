"""benchmarks/judge.py: hand-assigned JailbreakBench categories replace the hint on jailbroken rows."""

from __future__ import annotations

from types import ModuleType

import pytest
from benchmark_scripts import load_benchmark
from cosa_guard_training.detectors.judge_corpus import VAL, Example
from cosa_guard_training.detectors.judge_real import JAILBROKEN, NOT_JAILBROKEN
from cosa_guard_training.detectors.real_traffic import RealRow


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("judge")


def _pair(behaviour: str, kind: str, hint: tuple[str, ...]) -> tuple[RealRow, Example]:
    row = RealRow(
        "id", "exchanges_harmful_labelled", kind, "en", "src", behaviour, meta={"behavior": behaviour}
    )
    return row, Example("goal", "answer", hint, kind, behaviour, "real_traffic/artifacts", VAL)


def test_jailbroken_rows_take_the_hand_categories_and_refusals_keep_none(bench: ModuleType) -> None:
    pairs = [
        _pair("Date rape drug", JAILBROKEN, ("sexual",)),
        _pair("Date rape drug", NOT_JAILBROKEN, ()),
        _pair("Unlabelled behaviour", JAILBROKEN, ("other",)),
    ]
    labels = {"Date rape drug": frozenset({"drugs", "sexual"})}
    out = bench.handlabelled(pairs, [0, 1, 2], labels)
    assert [i for i, _ in out] == [0, 1]  # the unlabelled behaviour is left out
    assert out[0][1].categories == ("drugs", "sexual")
    assert out[1][1].categories == ()
    shipped = bench.jbb_behaviour_categories()
    assert shipped["Date rape drug"] == frozenset({"drugs", "sexual"})
