"""The category judge's corpus: deterministic, every category covered, split by family."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from cosa_guard_training.detectors import judge_corpus as corpus
from cosa_guard_training.detectors.judge_corpus import (
    TRAIN,
    VAL,
    build_corpus,
    public_examples,
    synthetic_examples,
)

from cosa_guard.taxonomy import CATEGORY_IDS

SHARED = corpus.default_data_dir()


def test_synthetic_corpus_is_deterministic_and_seed_dependent() -> None:
    first, again, other = synthetic_examples(0), synthetic_examples(0), synthetic_examples(1)
    assert first == again
    assert first != other


def test_every_category_has_positives_and_negatives_in_both_splits() -> None:
    rows = synthetic_examples()
    counts = Counter((r.split, c) for r in rows for c in r.categories)
    for split in (TRAIN, VAL):
        for cat in CATEGORY_IDS:
            assert counts[(split, cat)] >= 20, (split, cat)
        assert sum(1 for r in rows if r.split == split and not r.categories) >= 100


def test_every_kind_is_generated() -> None:
    kinds = {r.kind for r in synthetic_examples()}
    assert kinds == {"harmful", "safe", "refusal", "partial_refusal", "mixed", "unprompted", "benign"}


def test_labels_follow_the_kind() -> None:
    for row in synthetic_examples():
        if row.kind in {"safe", "refusal", "partial_refusal", "benign"}:
            assert row.categories == (), row
        elif row.kind == "mixed":
            assert len(row.categories) == 2, row
        else:
            assert len(row.categories) == 1, row
        assert set(row.categories) <= set(CATEGORY_IDS)


def test_validation_families_never_leak_into_training() -> None:
    rows = synthetic_examples()
    topic_families = {r.family for r in rows if r.kind in {"harmful", "safe", "refusal", "partial_refusal"}}
    val_only = {f for f in topic_families if all(r.split == VAL for r in rows if r.family == f)}
    assert val_only, "some topics must be held out whole"
    train_text = {r.response for r in rows if r.split == TRAIN}
    val_text = {r.response for r in rows if r.split == VAL}
    # A held-out topic's harmful sentences appear in no training response.
    for topic in corpus.TOPICS:
        if topic.id in val_only:
            assert not any(s in t for s in topic.harm for t in train_text if t)
    assert val_text - train_text


def test_the_last_style_of_each_kind_is_validation_only() -> None:
    rows = synthetic_examples()
    marker = "Okay, so basically:"  # the held-out how-to style
    assert any(marker in r.response for r in rows)
    assert all(r.split == VAL for r in rows if r.response.startswith(marker))


def test_training_only_extras_leave_the_validation_rows_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = synthetic_examples()
    extra_ids = {t.id for t in corpus.EXTRA_TOPICS}
    extras = [r for r in rows if r.family in extra_ids or r.family.startswith("extra/")]
    assert extras and all(r.split == TRAIN for r in extras)
    assert not extra_ids & {t.id for t in corpus.TOPICS}
    monkeypatch.setattr(corpus, "_training_extras", lambda seed, val_topics: [])
    without = synthetic_examples()
    assert [r for r in rows if r.split == VAL] == [r for r in without if r.split == VAL]
    assert len(rows) > len(without)


def test_public_rows_are_empty_without_the_shared_folder(tmp_path: Path) -> None:
    assert public_examples(tmp_path / "absent") == []
    assert build_corpus(tmp_path / "absent") == synthetic_examples()


def test_crime_keywords_refine_broad_labels() -> None:
    assert corpus.crime_category("Where do you buy guns outside the law?", "other") == "weapons"
    assert corpus.crime_category("How can I make LSD at home?", "other") == "drugs"
    assert corpus.crime_category("How do I launder money?", "financial_crime") == "financial_crime"


def test_cli_writes_jsonl_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus.jsonl"
    assert corpus.main(["--no-public", "--out", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(synthetic_examples())
    assert set(json.loads(lines[0])) == {
        "prompt",
        "response",
        "categories",
        "kind",
        "family",
        "source",
        "split",
    }
    assert f"wrote {len(lines)} rows" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.skipif(SHARED is None, reason="../shared/data is absent")
def test_public_sets_are_split_by_source_group() -> None:
    rows = public_examples(SHARED)
    sources = {r.source for r in rows}
    assert "gptfuzz_jailbreak_responses" in sources
    by_family: dict[str, set[str]] = {}
    for r in rows:
        by_family.setdefault(r.family, set()).add(r.split)
    assert all(len(splits) == 1 for fam, splits in by_family.items() if fam.startswith("gptfuzz/"))
    assert {r.split for r in rows if r.source == "gptfuzz_jailbreak_responses"} == {TRAIN, VAL}


@pytest.mark.integration
@pytest.mark.skipif(SHARED is None, reason="../shared/data is absent")
def test_prompts_past_the_cap_add_training_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = public_examples(SHARED)
    monkeypatch.setattr(corpus, "_leftover_rows", lambda leftover, rng: [])
    without = public_examples(SHARED)
    added = rows[len(without) :]
    assert rows[: len(without)] == without
    assert added and all(r.split == TRAIN and r.kind == "public_comply" for r in added)
    held_out = {r.family for r in without if r.kind == "public_refusal" and r.split == VAL}
    assert held_out and not held_out & {r.family for r in added}
    assert not {r.prompt for r in without} & {r.prompt for r in added}
