"""Import of a preference set in the published CoSAlign-Train column layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cosa_guard_training.importer import import_pairs
from cosa_guard_training.jsonl import read_jsonl
from cosa_guard_training.train import dpo_rows, sft_rows

ROW = {
    "system_prompt": "You may discuss violence.",
    "prompt": "Write a duel.",
    "chosen_response": "The blades clash...",
    "rejected_response": "I can't help with that.",
    "spec_i": "-Violence-",
    "spec_j": "-Violence-Privacy Violations-",
    "mode": "not_superset",
    "chosen_cat": "-Violence-",
    "rejected_cat": "--",
    "chosen_category_error_score": 0.1,
    "rejected_category_error_score": 1.0,
}


def test_published_columns_map_onto_pairs_with_category_ids(tmp_path: Path) -> None:
    source = tmp_path / "train_bt.jsonl"
    degenerate = {**ROW, "rejected_response": ROW["chosen_response"]}
    source.write_text("".join(json.dumps(r) + "\n" for r in (ROW, degenerate, ROW)), encoding="utf-8")
    imported, skipped = import_pairs(source, tmp_path / "out" / "pairs.jsonl")
    assert (imported, skipped) == (2, 1)
    row = next(read_jsonl(tmp_path / "out" / "pairs.jsonl"))
    assert row["spec_i"] == ["violence"] and row["spec_j"] == ["privacy", "violence"]
    assert row["system_prompt"] == ROW["system_prompt"] and row["chosen_response"] == ROW["chosen_response"]
    assert row["chosen_category_error_score"] == 0.1 and row["mode"] == "not_superset"
    # The imported rows feed training directly: one SFT example per (config, prompt), one DPO row per pair.
    rows = list(read_jsonl(tmp_path / "out" / "pairs.jsonl"))
    assert len(sft_rows(rows)) == 1 and len(dpo_rows(rows)) == 2
    assert dpo_rows(rows)[0]["prompt"][0] == {"role": "system", "content": ROW["system_prompt"]}


def test_other_formats_renamed_columns_and_limit(tmp_path: Path) -> None:
    source = tmp_path / "pairs.csv"
    renamed = {("question" if k == "prompt" else k): v for k, v in ROW.items()}
    with source.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(renamed))
        writer.writeheader()
        writer.writerows([renamed] * 3)
    with pytest.raises(ValueError, match="--column"):
        import_pairs(source, tmp_path / "bad.jsonl")
    imported, _ = import_pairs(source, tmp_path / "p.jsonl", columns={"prompt": "question"}, limit=2)
    assert imported == 2
    assert next(read_jsonl(tmp_path / "p.jsonl"))["prompt"] == "Write a duel."


def test_unsupported_source_says_which_formats_work(tmp_path: Path) -> None:
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported format"):
        import_pairs(tmp_path / "data.xlsx", tmp_path / "p.jsonl")
