"""The category judge's real-traffic rows and the calibration that caps false positives on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cosa_guard_training.detectors import judge_real as rc
from cosa_guard_training.detectors import real_traffic as rt
from cosa_guard_training.detectors.judge_corpus import TRAIN, VAL, Example, default_data_dir
from cosa_guard_training.detectors.judge_train import calibrate, calibrate_thresholds, cap_false_positives

from cosa_guard.taxonomy import CATEGORY_IDS

MEDQUAD = "github.com/abachaa/MedQuAD:a.xml@1"
PHTEST = "github.com/umd-huang-lab/FalseRefusal:PHTest/x.csv@1"
JBB = "github.com/JailbreakBench/artifacts:a.json@1"
HH = "github.com/anthropics/hh-rlhf:h.jsonl.gz@1"


def _group(split: str, start: int = 0) -> str:
    """A group name the real-traffic split puts on `split`."""
    return next(
        f"g{i}" for i in range(start, 10_000) if rt.split_of("github.com/x/y", "en", f"g{i}") == split
    )


TRAIN_GROUP, VAL_GROUP = _group("train"), _group("val")


def _pair(
    id: str, source: str, kind: str, group: str, label: str | None = None, hint: str = ""
) -> dict[str, object]:
    meta = {"cosa_category_hint": hint} if hint else {}
    return {
        "id": id,
        "prompt": f"prompt {id}",
        "response": f"response {id}",
        "lang": "en",
        "source": source,
        "kind": kind,
        "label": label,
        "group": group,
        "meta": meta,
    }


def _write(folder: Path, name: str, rows: list[dict[str, object]]) -> None:
    (folder / rt.FOLDER).mkdir(parents=True, exist_ok=True)
    with (folder / rt.FOLDER / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    _write(tmp_path, rt.DOCUMENT_FILE, [])
    benign = [
        _pair("med-1", MEDQUAD, "benign_response", TRAIN_GROUP),
        _pair("med-2", MEDQUAD, "benign_response", _group("train", 100)),
        _pair("med-3", MEDQUAD, "benign_response", _group("train", 200)),
        _pair("med-4", MEDQUAD, "benign_response", VAL_GROUP),
        _pair("ph-1", PHTEST, "benign_response", TRAIN_GROUP, "1_full_compliance"),
        _pair("ph-2", PHTEST, "benign_response", TRAIN_GROUP, "3_partial_refusal"),
        _pair("ph-3", PHTEST, "controversial_response", TRAIN_GROUP, "1_full_compliance"),
        _pair("ph-4", PHTEST, "controversial_response", VAL_GROUP, "1_full_compliance"),
    ]
    harmful = [
        _pair("jb-1", JBB, "harmful_response", VAL_GROUP, "jailbroken", "privacy"),
        _pair("jb-2", JBB, "harmful_response", TRAIN_GROUP, "jailbroken", "not-a-category"),
        _pair("jb-3", JBB, "non_jailbroken_response", TRAIN_GROUP, "not_jailbroken", "privacy"),
        _pair("hh-1", HH, "red_team_exchange", TRAIN_GROUP, "rejected"),
    ]
    _write(tmp_path, rt.BENIGN_EXCHANGE_FILE, benign)
    _write(tmp_path, rt.HARMFUL_EXCHANGE_FILE, harmful)
    return tmp_path


def test_labels_follow_the_source_and_kind(data: Path) -> None:
    got = {row.id: (ex.kind, ex.categories, ex.split) for row, ex in rc.real_pairs(data)}
    assert got == {
        "med-1": (rc.BENIGN, (), TRAIN),
        "med-2": (rc.BENIGN, (), TRAIN),
        "med-3": (rc.BENIGN, (), TRAIN),
        "med-4": (rc.BENIGN, (), VAL),
        "ph-1": (rc.BENIGN, (), TRAIN),
        "ph-2": (rc.REFUSAL, (), TRAIN),
        # controversial answers: validation side only, and never trained or calibrated on
        "ph-4": (rc.CONTROVERSIAL, (), VAL),
        # the behaviour's hint is the category; an unknown hint and hh-rlhf give no row
        "jb-1": (rc.JAILBROKEN, ("privacy",), VAL),
        "jb-3": (rc.NOT_JAILBROKEN, (), TRAIN),
    }
    assert rc.CONTROVERSIAL not in {ex.kind for ex in rc.real_examples(data)}
    assert {ex.source for ex in rc.real_examples(data)} == {
        "real_traffic/MedQuAD",
        "real_traffic/FalseRefusal",
        "real_traffic/artifacts",
    }


def test_capped_sources_lose_training_rows_only(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "TRAIN_CAPS", {"MedQuAD": 1})
    medquad = [(row.id, ex.split) for row, ex in rc.real_pairs(data) if ex.source == "real_traffic/MedQuAD"]
    assert [split for _, split in medquad].count(TRAIN) == 1
    assert ("med-4", VAL) in medquad
    assert [i for i, _ in medquad] == sorted(i for i, _ in medquad)  # file order kept
    assert rc.real_pairs(data) == rc.real_pairs(data)


def test_no_rows_without_the_folder(tmp_path: Path) -> None:
    assert rc.real_pairs(tmp_path) == []


def _row(kind: str, cats: tuple[str, ...] = (), source: str = "s") -> Example:
    return Example("p", "r", cats, kind, "f", source, VAL)


def test_the_cap_raises_the_category_that_costs_the_least_recall() -> None:
    drugs, sexual = CATEGORY_IDS.index("drugs"), CATEGORY_IDS.index("sexual")

    def probs(d: float, s: float) -> list[float]:
        return [d if j == drugs else s if j == sexual else 0.0 for j in range(len(CATEGORY_IDS))]

    # Two benign rows over the drugs threshold: raising drugs past them loses no true drugs row,
    # raising sexual would lose two true sexual rows and clear nothing.
    rows = [_row(rc.BENIGN)] * 8 + [_row(rc.BENIGN)] * 2 + [_row("harmful", ("drugs",))] * 2
    rows += [_row("harmful", ("sexual",))] * 2
    scores = [probs(0.1, 0.1)] * 8 + [probs(0.6, 0.1)] * 2 + [probs(0.9, 0.1)] * 2 + [probs(0.1, 0.5)] * 2
    labels = [[1.0 if c in r.categories else 0.0 for c in CATEGORY_IDS] for r in rows]
    start = dict.fromkeys(CATEGORY_IDS, 0.5)
    benign = [i for i, r in enumerate(rows) if r.kind == rc.BENIGN]
    capped = cap_false_positives(scores, labels, [benign], start, max_fpr=0.05)
    assert capped == {**start, "drugs": 0.61}
    # Already under the cap: unchanged; no benign rows: unchanged.
    assert cap_false_positives(scores, labels, [benign], start, max_fpr=0.2) == start
    assert cap_false_positives(scores, labels, [], start, max_fpr=0.0) == start
    # calibrate = F-beta thresholds, then the cap over the rows whose kind is real benign.
    fitted = calibrate_thresholds(scores, labels, 1.0)
    assert calibrate(scores, rows, 1.0, None) == fitted
    assert calibrate(scores, rows, 1.0, 0.05) == cap_false_positives(scores, labels, [benign], fitted, 0.05)


def test_a_per_source_cap_holds_for_the_hard_source_that_a_pooled_cap_hides() -> None:
    drugs = CATEGORY_IDS.index("drugs")

    def probs(d: float) -> list[float]:
        return [d if j == drugs else 0.0 for j in range(len(CATEGORY_IDS))]

    # 18 easy benign answers never flagged, 2 hard ones of another source at 0.6 and 0.7, true drugs
    # rows at 0.65: F1 picks 0.61, which flags 1 of 20 pooled (under a 0.1 cap) but 1 of the 2 hard.
    rows = [_row(rc.BENIGN, source="easy")] * 18 + [_row(rc.BENIGN, source="hard")] * 2
    rows += [_row("harmful", ("drugs",))] * 8
    scores = [probs(0.1)] * 18 + [probs(0.6), probs(0.7)] + [probs(0.65)] * 8
    pooled = calibrate(scores, rows, 1.0, 0.1)
    assert pooled["drugs"] == 0.61
    per_source = calibrate(scores, rows, 1.0, 0.1, per_source=True)
    assert per_source["drugs"] == 0.71  # past the hard answer, whatever recall it costs
    groups = [list(range(18)), [18, 19]]
    labels = [[1.0 if c in r.categories else 0.0 for c in CATEGORY_IDS] for r in rows]
    assert cap_false_positives(scores, labels, groups, pooled, 0.1) == per_source


SHARED = default_data_dir()


@pytest.mark.skipif(SHARED is None or not rt.available(SHARED), reason="../shared/data is absent")
def test_real_rows_keep_the_shared_split() -> None:
    assert SHARED is not None
    pairs = rc.real_pairs(SHARED)
    train_groups = {row.group for row, ex in pairs if ex.split == TRAIN}
    assert not train_groups & {row.group for row, ex in pairs if ex.split == VAL}
    assert all(ex.split == row.split for row, ex in pairs)
    kinds = {ex.kind for _, ex in pairs if ex.split == VAL}
    assert {rc.BENIGN, rc.REFUSAL, rc.JAILBROKEN, rc.NOT_JAILBROKEN, rc.CONTROVERSIAL} <= kinds
    assert all(ex.categories for _, ex in pairs if ex.kind == rc.JAILBROKEN)
