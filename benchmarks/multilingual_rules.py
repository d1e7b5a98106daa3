"""The structural rules and normaliser signals on real multilingual user turns: no script is evidence.

    python benchmarks/multilingual_rules.py [--data-dir ../shared/data]

Scans every row of `real_traffic/user_turns_multilingual.jsonl` (benign by source, 159 language
codes) with the rules alone, as the guard runs them before the classifier, and prints
`name=value` lines: rows, rows with a decisive finding (`decided`) and rows with any finding
(`reported`) over all rows, per script-heavy language (Arabic, Persian, Urdu, Hindi, Chinese,
Japanese, Korean, Russian, Greek), and over the rows that hold ZWNJ, ZWJ, LRM or RLM; then the
findings by detector. Runs in a few seconds; no model is loaded.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from cosa_guard.injection.structural import DECISIVE, scan

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LANGUAGES = ("ar", "fa", "ur", "hi", "zh", "ja", "ko", "ru", "el")
INVISIBLE = {"zwnj": "\u200c", "zwj": "\u200d", "lrm": "\u200e", "rlm": "\u200f"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    path = args.data_dir / "real_traffic" / "user_turns_multilingual.jsonl"
    rows = Counter[str]()
    decided = Counter[str]()
    reported = Counter[str]()
    detectors = Counter[str]()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            text = row["text"]
            findings = scan(text)
            groups = ["all"]
            if row["lang"] in LANGUAGES:
                groups.append(row["lang"])
            if any(c in text for c in INVISIBLE.values()):
                groups.append("invisible_marks")
            for group in groups:
                rows[group] += 1
                decided[group] += any(f.score >= DECISIVE for f in findings)
                reported[group] += bool(findings)
            detectors.update(
                f"{f.detector}:{'decisive' if f.score >= DECISIVE else 'weak'}" for f in findings
            )
    for group in ("all", *LANGUAGES, "invisible_marks"):
        print(f"{group}.rows={rows[group]}")
        print(f"{group}.decided={decided[group]}")
        print(f"{group}.reported={reported[group]}")
    for detector, count in sorted(detectors.items()):
        print(f"findings.{detector}={count}")


if __name__ == "__main__":
    main()
