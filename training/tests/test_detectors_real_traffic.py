"""The real-traffic reader and its split: deterministic, group-wise, sources and languages held out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cosa_guard_training.detectors import real_traffic as rt


def _write(folder: Path, name: str, rows: list[dict[str, object]]) -> None:
    (folder / rt.FOLDER).mkdir(parents=True, exist_ok=True)
    with (folder / rt.FOLDER / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def test_rows_of_one_group_share_a_split() -> None:
    splits = {rt.split_of("github.com/a/b", lang, "group-7") for lang in ("de", "fr", "ja", "ar")}
    assert len(splits) == 1


def test_held_out_sources_and_languages_are_validation_only() -> None:
    groups = [f"g{i}" for i in range(200)]
    assert {rt.split_of("github.com/python/peps", "en", g) for g in groups} == {"val"}
    assert {rt.split_of("github.com/a/b", "uk", g) for g in groups} == {"val"}
    train_share = sum(rt.split_of("github.com/a/b", "de", g) == "train" for g in groups) / len(groups)
    assert 0.7 < train_share < 0.9


@pytest.mark.parametrize(
    ("lang", "text", "group"),
    [
        ("en", "What time is it?", "en"),
        ("de", "Wie spät ist es?", "latin"),
        ("ru", "Который час?", "cyrillic"),
        ("fa", "ساعت چند است؟", "arabic_script"),
        ("el", "Τι ώρα είναι;", "greek"),
        ("ja", "今何時ですか？", "cjk"),
        ("hi", "क्या समय हुआ है?", "indic"),
        ("xx", "12345", "other"),
    ],
)
def test_language_group_follows_the_script(lang: str, text: str, group: str) -> None:
    assert rt.language_group(lang, text) == group


def test_length_buckets() -> None:
    assert [rt.length_bucket("x" * n) for n in (10, 200, 1000, 5000)] == list(rt.LENGTH_BUCKETS)


def test_reads_each_file_kind(tmp_path: Path) -> None:
    turn = {
        "id": "t-1",
        "text": "hola",
        "lang": "es",
        "source": "github.com/a/b:x@1",
        "kind": "sentence",
        "group": "g1",
    }
    pair = {
        "id": "e-1",
        "prompt": "p",
        "response": "r",
        "lang": "en",
        "source": "github.com/c/d:y@2",
        "kind": "harmful_response",
        "label": "jailbroken",
        "group": "g2",
        "meta": {"k": 1},
    }
    for name in rt.USER_TURN_FILES:
        _write(tmp_path, name, [turn])
    _write(tmp_path, rt.DOCUMENT_FILE, [turn])
    _write(tmp_path, rt.HARMFUL_EXCHANGE_FILE, [pair])
    assert rt.available(tmp_path)
    turns = rt.user_turns(tmp_path)
    assert [r.text for r in turns] == ["hola"] * 3
    assert turns[0].repo == "github.com/a/b"
    (harmful,) = rt.harmful_exchanges(tmp_path)
    assert (harmful.prompt, harmful.response, harmful.label, harmful.meta) == (
        "p",
        "r",
        "jailbroken",
        {"k": 1},
    )
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        rt.benign_exchanges(tmp_path)


def test_validation_leaves_out_groups_that_also_train() -> None:
    def row(lang: str, group: str) -> rt.RealRow:
        return rt.RealRow(id=f"{lang}-{group}", file="f", kind="sentence", lang=lang, source="s", group=group)

    groups = [f"g{i}" for i in range(200)]
    trained = next(g for g in groups if rt.split_of("s", "de", g) == "train")
    held = next(g for g in groups if rt.split_of("s", "de", g) == "val")
    # "uk" is a held-out language: its row of a group whose German translation trains is a leak.
    rows = [row("uk", trained), row("de", trained), row("uk", held), row("de", held)]
    kept = {(r.lang, r.group) for r in rt.without_leaks(rows)}
    assert kept == {("de", trained), ("uk", held), ("de", held)}
