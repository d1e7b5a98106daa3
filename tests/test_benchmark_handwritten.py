"""The hand-written benchmark sets of benchmarks/data: the shape their README promises."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
DATA = DATA_DIR / "sensitive_safe_answers.jsonl"
KINDS = {"homonym": 13, "safety": 10, "history": 6, "fiction": 6, "medical": 6}
OTHER_KINDS = {"security", "legal", "other"}


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sensitive_answers_have_the_documented_fields_kinds_and_counts() -> None:
    cases = _rows(DATA)
    assert len(cases) == 50
    assert all(set(c) == {"id", "kind", "prompt", "response"} for c in cases)
    assert len({c["id"] for c in cases}) == len(cases)
    assert len({(c["prompt"], c["response"]) for c in cases}) == len(cases)
    kinds = Counter(c["kind"] for c in cases)
    assert {k: kinds[k] for k in KINDS} == KINDS
    assert set(kinds) - set(KINDS) == OTHER_KINDS and sum(kinds[k] for k in OTHER_KINDS) == 9
    assert all(c["prompt"].strip() and len(c["response"]) >= 60 for c in cases)


INJECTION_KINDS = {
    ("benign", "everyday"): 26,
    ("benign", "developer"): 10,
    ("benign", "multilingual"): 14,
    ("benign", "conversational_repair"): 13,
    ("benign", "forum"): 25,
    ("benign", "forum_long"): 5,
    ("attack", "mixed"): 10,
    ("attack", "multilingual"): 7,
}
ATTACK_FAMILIES = {"authority", "fake_config", "template", "roleplay", "encoding", "indirect", "subtle"}


def test_injection_messages_have_the_documented_labels_kinds_and_counts() -> None:
    cases = _rows(DATA_DIR / "injection_handwritten.jsonl")
    assert len(cases) == 133
    assert all(set(c) == {"id", "label", "kind", "text"} for c in cases)
    assert len({c["id"] for c in cases}) == len({c["text"] for c in cases}) == len(cases)
    kinds = Counter((c["label"], c["kind"]) for c in cases)
    assert {k: kinds[k] for k in INJECTION_KINDS} == INJECTION_KINDS
    families = {kind for label, kind in kinds if (label, kind) not in INJECTION_KINDS}
    assert families == ATTACK_FAMILIES
    assert sum(n for (label, kind), n in kinds.items() if kind in ATTACK_FAMILIES and label == "attack") == 23
    assert all(len(c["text"]) > 1000 for c in cases if c["kind"] == "forum_long")


def test_jailbreakbench_behaviour_categories_are_taxonomy_ids() -> None:
    import yaml

    from cosa_guard.taxonomy import CATEGORY_IDS

    data = yaml.safe_load((DATA_DIR / "jbb_behaviour_categories.yaml").read_text(encoding="utf-8"))
    behaviours = data["behaviours"]
    assert len(behaviours) == 19  # the behaviours of the real-traffic validation split (README)
    assert all(cats and len(set(cats)) == len(cats) for cats in behaviours.values())
    assert {c for cats in behaviours.values() for c in cats} <= set(CATEGORY_IDS)
