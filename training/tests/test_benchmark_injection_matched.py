"""benchmarks/injection.py's matched-FPR comparison: the cut follows the real benign texts."""

from __future__ import annotations

from types import ModuleType

import pytest
from benchmark_scripts import load_benchmark
from cosa_guard_training.detectors.injection_corpus import ATTACK, BENIGN, Row

from cosa_guard.injection.base import Finding
from cosa_guard.injection.detector import TurnVerdict
from cosa_guard.injection.structural import DECISIVE


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("injection")


def _row(label: str, kind: str, source: str = "generated") -> Row:
    return Row("text", label, kind, f"{kind}/f", "validation", source=source)


def _verdict(score: float, *, rule: bool = False) -> TurnVerdict:
    findings = (Finding("structural:chat_template", "forged turn", score=DECISIVE),) if rule else ()
    return TurnVerdict(
        attack=rule, score=max(score, DECISIVE if rule else 0.0), findings=findings, classifier_score=score
    )


def test_recall_is_read_at_the_cut_that_flags_the_target_share_of_real_benign_texts(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1,000 real benign texts: scores 0 .. 0.999; the top one scores 0.999, the next 0.998.
    real_rows = [_row(BENIGN, "real_turn", "real") for _ in range(1000)]
    real_verdicts = [_verdict(i / 1000) for i in range(1000)]
    real_rows += [_row(ATTACK, "planted", "real"), _row(ATTACK, "planted", "real")]
    real_verdicts += [_verdict(0.9985), _verdict(0.5)]  # caught only once one benign text is flagged
    rows = [_row(ATTACK, "public_jailbreak_in_the_wild", "public"), _row(ATTACK, "override", "generated")]
    verdicts = [_verdict(0.2, rule=True), _verdict(0.9995)]
    rows.append(_row(BENIGN, "everyday"))
    verdicts.append(_verdict(0.9991))
    bench.matched_rates(rows, verdicts, real_rows, real_verdicts)
    lines = dict(line.split("=") for line in capsys.readouterr().out.splitlines())
    # 0.1 %: one benign text (0.999) may be flagged, so the cut sits just above 0.998.
    assert float(lines["matched_real_fpr_0_1pct_real_fpr"]) == pytest.approx(0.001)
    assert lines["matched_real_fpr_0_1pct_threshold"] == "0.9980"  # printed to 4 places
    assert lines["matched_real_fpr_0_1pct_recall_planted"] == "0.5000"
    assert lines["matched_real_fpr_0_1pct_recall_in_the_wild"] == "1.0000"  # the rules decided it
    assert lines["matched_real_fpr_0_1pct_recall_synthetic"] == "1.0000"
    assert lines["matched_real_fpr_0_1pct_synthetic_fpr"] == "1.0000"
    # 1 %: ten benign texts flagged; the planted 0.5 stays under the cut (0.990).
    assert float(lines["matched_real_fpr_1pct_real_fpr"]) == pytest.approx(0.01)
    assert lines["matched_real_fpr_1pct_recall_planted"] == "0.5000"


def test_rules_that_flag_benign_texts_leave_no_cut_that_meets_the_target(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    real_rows = [_row(BENIGN, "real_turn", "real") for _ in range(10)]
    real_verdicts = [_verdict(0.0, rule=True)] + [_verdict(0.1) for _ in range(9)]
    bench.matched_rates([_row(ATTACK, "override")], [_verdict(0.9)], real_rows, real_verdicts)
    lines = dict(line.split("=") for line in capsys.readouterr().out.splitlines())
    assert lines["matched_real_fpr_1pct_threshold"] == "inf"
    assert lines["matched_real_fpr_1pct_real_fpr"] == "0.1000"
    assert lines["matched_real_fpr_1pct_recall_synthetic"] == "0.0000"
