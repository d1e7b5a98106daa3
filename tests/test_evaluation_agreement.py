"""Agreement between graders: raw agreement and Cohen's kappa on hand-computed tables; the graders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import ConfigError, JudgeError
from cosa_guard.evaluation.agreement import agreement
from cosa_guard.evaluation.graders import HumanLabels, JudgeGrader, judge_spec
from cosa_guard.judges.fake import ScriptedJudge

T, F = True, False


def test_kappa_of_a_hand_computed_table() -> None:
    # 10 answers: both comply 4, both violate 3, only A flags 1, only B flags 2.
    pairs = [(T, T)] * 4 + [(F, F)] * 3 + [(F, T)] + [(T, F)] * 2
    a = agreement("judge", "grader", pairs)
    assert (a.n, a.agree, a.only_a_violates, a.only_b_violates) == (10, 7, 1, 2)
    assert a.raw == pytest.approx(0.7)
    # A complies 6/10, B complies 5/10 → chance = .6·.5 + .4·.5 = .5 → κ = (.7 − .5) / .5 = .4
    assert a.kappa == pytest.approx(0.4)


def test_kappa_is_one_for_perfect_agreement_and_negative_below_chance() -> None:
    assert agreement("a", "b", [(T, T), (F, F)]).kappa == pytest.approx(1.0)
    assert agreement("a", "b", [(T, F), (F, T)]).kappa == pytest.approx(-1.0)


def test_kappa_is_undefined_when_both_give_one_answer_throughout_or_nothing_was_graded() -> None:
    same = agreement("a", "b", [(T, T)] * 5)
    assert same.raw == 1.0 and same.kappa is None
    empty = agreement("a", "b", [])
    assert empty.raw is None and empty.kappa is None


CONFIG = SafetyConfig(id="c", version=1, text="Games.", allow=("violence",))


@pytest.mark.parametrize(
    ("text", "kind", "threshold"),
    [("rules", "rules", None), (' {"kind": "category", "threshold": 0.7} ', "category", 0.7)],
)
def test_judge_spec_takes_a_kind_or_json(text: str, kind: str, threshold: float | None) -> None:
    spec = judge_spec(text)
    assert (spec.kind, spec.threshold) == (kind, threshold)


@pytest.mark.parametrize(("text", "message"), [("{kind", "not valid JSON"), ('{"kind": 3}', "kind")])
def test_judge_spec_errors_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        judge_spec(text)


async def test_judge_grader_grades_with_the_verdict_and_a_failure_is_no_grade() -> None:
    grader = JudgeGrader(ScriptedJudge(flags={"sword": "violence", "bomb": "weapons"}, name="other-judge"))
    assert grader.name == "other-judge"
    assert await grader.complies(CONFIG, "q", "a sword fight") is True
    assert await grader.complies(CONFIG, "q", "a pipe bomb") is False
    failing = JudgeGrader(ScriptedJudge([JudgeError("down")]))
    assert await failing.complies(CONFIG, "q", "anything") is None


def _labels(tmp_path: Path, *rows: dict[str, object]) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_labels_prefer_the_run_and_only_label_the_answer_that_was_labelled(tmp_path: Path) -> None:
    labels = HumanLabels.load(
        _labels(
            tmp_path,
            {"id": "e1", "complies": True},
            {"id": "e1", "complies": False, "target": "studio"},
            {"id": "e2", "complies": False, "response": "the answer we read"},
        )
    )
    assert labels.name == "labels:labels.jsonl"
    assert labels.label("studio", "e1", "x") is False
    assert labels.label("studio ICA", "e1", "x") is True
    assert labels.label("studio", "e2", " the answer we read\n") is False
    assert labels.label("studio", "e2", "a new answer") is None
    assert labels.label("studio", "e3", "x") is None


def test_labels_file_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"labels.jsonl:2: complies"):
        HumanLabels.load(_labels(tmp_path, {"id": "e1", "complies": True}, {"id": "e2", "complies": "yes?"}))
    with pytest.raises(ConfigError, match=r"labelled twice: \['\*/e1'\]"):
        HumanLabels.load(_labels(tmp_path, {"id": "e1", "complies": True}, {"id": "e1", "complies": False}))
    with pytest.raises(ConfigError, match="cannot read the labels file"):
        HumanLabels.load(tmp_path / "missing.jsonl")
