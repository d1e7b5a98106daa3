"""`cosa-guard scan`: run the config-injection detector over a text or a JSONL log."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from cosa_guard.injection.detector import TurnVerdict

_BATCH = 64


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scan",
        help="check texts for config-injection attempts (normaliser, structural rules, trained classifier)",
        description=(
            "Scan one text, stdin ('-'), or a JSONL file (one object per line, the text in --field). "
            "A single text prints its verdict, score and each finding; a JSONL file prints one JSON line "
            "per input with `verdict` (attack or benign), `score` and `reasons`, for auditing logs."
        ),
    )
    p.add_argument("input", help="the text itself, '-' for stdin, or a path to a .jsonl file")
    p.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    p.add_argument("--no-classifier", action="store_true", help="structural rules only (no model load)")
    p.add_argument(
        "--threshold", type=float, help="classifier threshold (default: the shipped, calibrated one)"
    )
    p.add_argument("--output", "-o", help="write JSONL results here instead of stdout")
    p.set_defaults(func=run)


def _jsonl_texts(path: Path, field: str) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise SystemExit(
                    f"error: {path}:{number} has no string field {field!r}; pick one with --field"
                )
            yield row[field]


def run(args: argparse.Namespace) -> int:
    import asyncio

    from cosa_guard.injection.detector import InjectionDetector

    detector = InjectionDetector()
    use_classifier = not args.no_classifier

    def verdicts(texts: list[str]) -> list[TurnVerdict]:
        return asyncio.run(detector.scan(texts, use_classifier=use_classifier, threshold=args.threshold))

    path = Path(args.input)
    if args.input != "-" and path.suffix == ".jsonl" and path.is_file():
        out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
        try:
            batch: list[str] = []
            for text in _jsonl_texts(path, args.field):
                batch.append(text)
                if len(batch) == _BATCH:
                    _write(out, verdicts(batch))
                    batch = []
            _write(out, verdicts(batch))
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
    text = sys.stdin.read() if args.input == "-" else args.input
    (verdict,) = verdicts([text])
    print(f"verdict={'attack' if verdict.attack else 'benign'} score={verdict.score:.4f}")
    if verdict.classifier_score is not None:
        print(f"classifier_score={verdict.classifier_score:.4f}")
    for f in verdict.findings:
        span = f"[{f.span[0]}:{f.span[1]}]" if f.span else "[-]"
        print(f"  {f.score:.2f} {f.detector} {span} {f.reason}")
    return 0


def _write(out: TextIO, verdicts: list[TurnVerdict]) -> None:
    for v in verdicts:
        reasons = [f"{f.detector}: {f.reason}" for f in v.findings]
        row = {"verdict": "attack" if v.attack else "benign", "score": round(v.score, 4), "reasons": reasons}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
