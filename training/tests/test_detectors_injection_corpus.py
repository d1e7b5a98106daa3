"""The training corpus: deterministic by seed, balanced, split by template family."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from cosa_guard_training.detectors import injection_corpus as corpus
from cosa_guard_training.detectors.injection_corpus import (
    ATTACK,
    BENIGN,
    Row,
    build_corpus,
    corpus_digest,
    public_rows,
)

from cosa_guard.injection import structural
from cosa_guard.injection.structural import Cue
from cosa_guard.normalise import normalise

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return build_corpus(seed=3, per_family=20)


def test_same_seed_same_corpus(rows: list[Row]) -> None:
    assert corpus_digest(build_corpus(seed=3, per_family=20)) == corpus_digest(rows)


def test_other_seed_other_corpus(rows: list[Row]) -> None:
    assert corpus_digest(build_corpus(seed=4, per_family=20)) != corpus_digest(rows)


def test_hard_negatives_match_attacks_in_number(rows: list[Row]) -> None:
    counts = collections.Counter(
        r.label for r in rows if r.kind not in {"multilingual", "multilingual_benign"}
    )
    assert 0.8 <= counts[BENIGN] / counts[ATTACK] <= 1.25


def test_no_family_is_on_both_sides_of_the_split(rows: list[Row]) -> None:
    splits: dict[str, set[str]] = collections.defaultdict(set)
    for r in rows:
        splits[r.family].add(r.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {r.split for r in rows} == {"train", "validation"}


def test_every_kind_with_several_families_is_validated_on_an_unseen_one(rows: list[Row]) -> None:
    for table in (corpus.ATTACKS, corpus.NEGATIVES):
        for kind, families in table.items():
            held = {r.family for r in rows if r.kind == kind and r.split == "validation"}
            assert held or len(families) < 2, kind


def test_encodings_and_languages_are_present(rows: list[Row]) -> None:
    assert {"base64", "zero_width", "homoglyph", "leetspeak", "tag_chars"} <= {r.encoding for r in rows}
    assert {"es", "zh", "ru"} <= {r.language for r in rows}
    assert not any(r.encoding == "tag_chars" for r in rows if r.label == BENIGN)


def test_texts_are_unique_and_rows_round_trip(rows: list[Row], tmp_path: Path) -> None:
    assert len({r.text for r in rows}) == len(rows)
    path = tmp_path / "c.jsonl"
    assert corpus.write_jsonl(rows, path) == len(rows)
    assert corpus.read_jsonl(path) == rows
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["label"] in {ATTACK, BENIGN}


def test_public_rows_are_empty_without_shared_data(tmp_path: Path) -> None:
    assert public_rows(tmp_path) == []


@pytest.mark.integration
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")
def test_public_rows_join_with_their_own_split() -> None:
    public = public_rows(SHARED)
    assert {r.label for r in public} == {ATTACK, BENIGN}
    assert {r.split for r in public} == {"train", "validation"}
    assert all(r.source != "generated" for r in public)


def _cues() -> list[tuple[str, Cue]]:
    return [(name, value) for name, value in vars(structural).items() if isinstance(value, Cue)]


def test_every_cue_word_list_is_a_necessary_condition_of_its_pattern() -> None:
    """The structural rules' fast path skips a pattern on ASCII text without a cue word: that is safe
    only if every match of every cue's pattern in ASCII text, over the whole generated corpus
    (attacks and hard negatives), holds a cue word."""
    texts = [t for t in (normalise(row.text).text for row in build_corpus()) if t.isascii()]
    assert len(_cues()) >= 5
    matched = 0
    for name, cue in _cues():
        for text in texts:
            for m in cue.pattern.finditer(text):
                matched += 1
                assert any(w in m.group(0).lower() for w in cue.words), (name, m.group(0))
    assert matched > 1000  # the corpus really exercises the patterns
