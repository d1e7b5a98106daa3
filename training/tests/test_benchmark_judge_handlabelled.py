"""benchmarks/judge.py: hand-assigned JailbreakBench categories replace the hint on jailbroken rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cosa_guard_training.detectors.judge_corpus import VAL, Example
from cosa_guard_training.detectors.judge_real import JAILBROKEN, NOT_JAILBROKEN
from cosa_guard_training.detectors.real_traffic import RealRow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "judge.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("judge_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
