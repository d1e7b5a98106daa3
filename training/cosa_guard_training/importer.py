"""Import an existing preference set in the published CoSAlign-Train column layout.

CoSAlign-Train (microsoft/CoSAlign-Train, 122K pairs) has the columns `system_prompt, prompt,
chosen_response, rejected_response, spec_i, spec_j, mode, chosen_cat, rejected_cat,
chosen_category_error_score, rejected_category_error_score`. A user who has a copy (JSONL,
JSON, CSV or Parquet, a file or a folder of them) turns it into this pipeline's `pairs.jsonl`
and goes straight to training. Category strings such as `-Violence-Privacy Violations-` become
category ids; licence terms of the source set travel with it (see docs/training.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cosa_guard.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from cosa_guard_training.jsonl import read_jsonl, write_jsonl
from cosa_guard_training.synth import parse_categories

REQUIRED = ("system_prompt", "prompt", "chosen_response", "rejected_response")
CATEGORY_COLUMNS = ("spec_i", "spec_j")
PASSTHROUGH = (
    "mode",
    "chosen_cat",
    "rejected_cat",
    "chosen_category_error_score",
    "rejected_category_error_score",
)
_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix in _FORMATS)
        if not files:
            raise ValueError(f"{source}: no {sorted(_FORMATS)} files inside")
        return files
    if source.suffix not in _FORMATS:
        raise ValueError(f"{source}: unsupported format; use one of {sorted(_FORMATS)}")
    return [source]


def read_rows(source: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of every data file at `source`; JSONL is read directly, other formats with `datasets`."""
    for path in _files(Path(source)):
        if path.suffix == ".jsonl":
            yield from read_jsonl(path)
            continue
        import datasets  # a dependency of this distribution; heavy, so only loaded for these formats

        yield from datasets.load_dataset(_FORMATS[path.suffix], data_files=str(path), split="train")


def convert_row(
    row: Mapping[str, Any], columns: Mapping[str, str], taxonomy: Taxonomy = DEFAULT_TAXONOMY
) -> dict[str, Any] | None:
    """One source row in this pipeline's pairs layout; None for a row with nothing to learn from."""
    get = {ours: columns.get(ours, ours) for ours in (*REQUIRED, *CATEGORY_COLUMNS, *PASSTHROUGH)}
    missing = [get[c] for c in REQUIRED if get[c] not in row]
    if missing:
        raise ValueError(f"source rows lack the column(s) {missing}; map them with --column OURS=THEIRS")
    out: dict[str, Any] = {c: str(row[get[c]] or "") for c in REQUIRED}
    if not out["chosen_response"].strip() or out["chosen_response"] == out["rejected_response"]:
        return None
    for c in CATEGORY_COLUMNS:
        if row.get(get[c]) is not None:
            out[c] = list(parse_categories(row[get[c]], taxonomy))
    for c in PASSTHROUGH:
        if row.get(get[c]) is not None:
            out[c] = row[get[c]]
    return out


def import_pairs(
    source: str | Path,
    output: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> tuple[int, int]:
    """Convert `source` into `output` (pairs JSONL); returns (imported, skipped)."""
    mapping = dict(columns or {})
    skipped = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal skipped
        kept = 0
        for row in read_rows(source):
            if limit is not None and kept >= limit:
                return
            converted = convert_row(row, mapping)
            if converted is None:
                skipped += 1
                continue
            kept += 1
            yield converted

    imported = write_jsonl(output, rows())
    return imported, skipped
