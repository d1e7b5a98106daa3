"""The hand-written sensitive-sounding safe answers (benchmarks/data): the shape its README promises."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "sensitive_safe_answers.jsonl"
KINDS = {"homonym": 13, "safety": 10, "history": 6, "fiction": 6, "medical": 6}
OTHER_KINDS = {"security", "legal", "other"}


def test_cases_have_the_documented_fields_kinds_and_counts() -> None:
    cases = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(cases) == 50
    assert all(set(c) == {"id", "kind", "prompt", "response"} for c in cases)
    assert len({c["id"] for c in cases}) == len(cases)
    assert len({(c["prompt"], c["response"]) for c in cases}) == len(cases)
    kinds = Counter(c["kind"] for c in cases)
    assert {k: kinds[k] for k in KINDS} == KINDS
    assert set(kinds) - set(KINDS) == OTHER_KINDS and sum(kinds[k] for k in OTHER_KINDS) == 9
    assert all(c["prompt"].strip() and len(c["response"]) >= 60 for c in cases)
