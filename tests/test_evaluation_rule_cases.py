"""The hand-labelled rule benchmark: its data files, the loader's checks, the metrics and the script."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import ConfigError, JudgeError
from cosa_guard.evaluation.dataset import EvalDataset
from cosa_guard.evaluation.rule_cases import (
    Outcome,
    RuleCase,
    judge_cases,
    load_cases,
    per_group_accuracy,
    rule_metrics,
    same_rule,
)
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.types import Verdict

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
CASES, CONFIGS = DATA / "rules_cases.jsonl", DATA / "rules_configs.yaml"


def test_benchmark_data_loads_and_has_the_promised_shape() -> None:
    cases = load_cases(CASES, CONFIGS)
    kinds = Counter(c.kind for c in cases)
    assert kinds["text_only_violation"] >= 35 and kinds["allowed"] >= 45
    assert set(kinds) == {"text_only_violation", "allowed", "category_violation", "refusal", "partial"}
    per_config = Counter(c.config.id for c in cases)
    assert 8 <= len(per_config) <= 10 and all(12 <= n <= 15 for n in per_config.values())
    assert any(not c.config.allow for c in cases), "some configs are text-only"
    assert all(40 <= len(c.answer.split()) <= 250 for c in cases)


def test_benchmark_configs_are_not_the_bundled_examples() -> None:
    ours = {c["id"] for c in yaml.safe_load(CONFIGS.read_text(encoding="utf-8"))["configs"]}
    assert not ours & set(EvalDataset.bundled().configs)


CONFIG_YAML = """configs:
  - id: kids
    version: 1
    text: "A kids cooking site. Recipes must never contain pork. Talk about any food."
"""


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "k1",
        "config_id": "kids",
        "kind": "text_only_violation",
        "complies": False,
        "deciding_rule": "Recipes must never contain pork.",
        "request": "A pasta recipe?",
        "answer": "Fry the bacon...",
    }
    return row | overrides


def _write(tmp_path: Path, *rows: dict[str, object]) -> tuple[Path, Path]:
    configs = tmp_path / "configs.yaml"
    configs.write_text(CONFIG_YAML, encoding="utf-8")
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return cases, configs


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_row(config_id="bank"), "unknown config 'bank'"),
        (_row(complies=True), "contradicts complies=True"),
        (_row(deciding_rule="Recipes must be vegan."), "deciding_rule is not a sentence"),
        (_row(kind="misc"), "kind"),
    ],
)
def test_load_cases_rejects_a_bad_row_naming_its_line(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    cases, configs = _write(tmp_path, _row(id="k0"), row)
    with pytest.raises(ConfigError, match=message) as caught:
        load_cases(cases, configs)
    assert "cases.jsonl:2" in str(caught.value)


def test_load_cases_rejects_a_repeated_id_and_matches_rules_across_line_breaks(tmp_path: Path) -> None:
    cases, configs = _write(tmp_path, _row(deciding_rule="Recipes must\n never contain pork."), _row())
    with pytest.raises(ConfigError, match="'k1' is repeated"):
        load_cases(cases, configs)


CONFIG = SafetyConfig(id="c", version=1, text="Gore is allowed. No harm to animals.", allow=("violence",))


def _case(case_id: str, kind: str, rule: str | None = None) -> RuleCase:
    complies = kind in ("allowed", "refusal")
    return RuleCase(case_id, CONFIG, kind, complies, rule, "q", f"answer {case_id}")  # type: ignore[arg-type]


async def test_metrics_of_a_scripted_judge() -> None:
    cases = [
        _case("t1", "text_only_violation", "No harm to animals."),
        _case("t2", "text_only_violation", "No harm to animals."),
        _case("a1", "allowed", "Gore is allowed."),
        _case("a2", "allowed"),
        _case("c1", "category_violation"),
        _case("r1", "refusal"),
    ]
    rule = Verdict(
        frozenset(), False, 1.0, reason="violates rule 2", rule_number=2, rule_text="No harm to animals"
    )
    wrong_rule = Verdict(frozenset(), False, 1.0, rule_number=2, rule_text="No harm to animals.")
    ok = Verdict(frozenset(), True, 0.0)
    judge = ScriptedJudge([rule, ok, wrong_rule, ok, JudgeError("crash"), ok])
    outcomes = await judge_cases(judge, cases)
    metrics = rule_metrics(outcomes)
    assert metrics["n"] == 6
    assert metrics["text_only_recall"] == 0.5
    assert metrics["over_refusal"] == pytest.approx(1 / 3)  # a1 refused; a2 and r1 passed
    assert metrics["category_violation_recall"] == 1.0  # the judge error counts as a refusal
    assert metrics["errors"] == 1
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["rule_named"] == 2 and metrics["rule_hit_rate"] == 0.5
    assert metrics["partial_recall"] is None
    assert per_group_accuracy(outcomes, "kind")["allowed"] == 0.5
    assert judge.calls == [f"answer {c.id}" for c in cases]
    assert [o.reason for o in outcomes[:1] + outcomes[4:5]] == ["violates rule 2", "judge error"]


def test_metrics_without_named_rules_leave_the_hit_rate_undefined() -> None:
    outcomes = [Outcome(_case("a", "allowed"), True, "", 1.0)]
    assert rule_metrics(outcomes)["rule_hit_rate"] is None


@pytest.mark.parametrize(
    ("named", "deciding", "same"),
    [
        ("Recipes must never contain pork", "Recipes must never contain pork.", True),
        ("recipes must never contain  pork.", "Recipes must never contain pork.", True),
        ("never contain pork", "Recipes must never contain pork.", True),
        ("Recipes must never contain alcohol.", "Recipes must never contain pork.", False),
        ("...", "Recipes must never contain pork.", False),
    ],
)
def test_same_rule(named: str, deciding: str, same: bool) -> None:
    assert same_rule(named, deciding) is same


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rules_bench", ROOT / "benchmarks" / "rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_script_prints_name_value_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases, configs = _write(
        tmp_path,
        _row(),
        _row(id="k2", kind="allowed", complies=True, deciding_rule=None, answer="Boil the pasta."),
    )
    judge = json.dumps({"kind": "scripted", "options": {"flags": {"bacon": "other"}}})
    code = _script().main(["--judge", judge, "--cases", str(cases), "--configs", str(configs)])
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert code == 0
    assert lines["n"] == "2" and lines["accuracy"] == "1.0000" and lines["text_only_recall"] == "1.0000"
    assert lines["rule_hit_rate"] == "nan" and lines["accuracy.kids"] == "1.0000"


def test_benchmark_script_unknown_judge_kind_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main(["--judge", "no-such-judge"]) == 2
    assert "unknown judge kind 'no-such-judge'" in capsys.readouterr().err
