"""`cosa-guard judge`: run the trained category judge on one response or on a JSONL log."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from cosa_guard.config import SafetyConfig
    from cosa_guard.judges.category import CategoryJudge
    from cosa_guard.types import Verdict

_BATCH = 32


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "judge",
        help="categorise a response with the trained category judge and check it against a config",
        description=(
            "Judge one response (--prompt/--response) or a JSONL log (FILE: one object per line with "
            "`prompt`, `response` and optionally `allow`, a list of category ids). Prints the verdict: the "
            "risk categories found, whether the response complies with the config (categories ⊆ allowed; "
            "`other` never allowed), the violation score and every category's probability. A JSONL log "
            "gets each line back with `categories`, `scores` and `complies` added, for auditing traffic."
        ),
    )
    p.add_argument("file", nargs="?", type=Path, help="a .jsonl log to judge line by line")
    p.add_argument("--prompt", default="", help="the user's request (context for the response)")
    p.add_argument("--response", help="the assistant's response to judge")
    p.add_argument(
        "--config", type=Path, metavar="FILE", help="a SafetyConfig YAML (its `allow` list applies)"
    )
    p.add_argument(
        "--allow", default="", help="comma-separated category ids to allow when no --config is given"
    )
    p.add_argument("--weights", type=Path, help="a trained judge folder (default: the shipped weights)")
    p.add_argument("--threshold", type=float, help="one threshold for every category (default: calibrated)")
    p.add_argument("--output", "-o", type=Path, help="write JSONL results here instead of stdout")
    p.set_defaults(func=run)


def _config(path: Path | None, allow: Sequence[str]) -> SafetyConfig:
    from cosa_guard.config import SafetyConfig

    if path is not None:
        return SafetyConfig.load(path)
    return SafetyConfig.from_mapping(
        {
            "id": "command-line",
            "version": 1,
            "text": "Categories allowed on the command line.",
            "allow": allow,
        }
    )


def _split(allow: str) -> list[str]:
    return [c.strip() for c in allow.split(",") if c.strip()]


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "complies": verdict.complies,
        "categories": sorted(verdict.categories),
        "score": round(verdict.score, 4),
        "scores": {c: round(p, 4) for c, p in verdict.scores.items()},
        "reason": verdict.reason,
        "rule": verdict.rule,
    }


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("response"), str):
                raise SystemExit(f"error: {path}:{number} needs a string `response` (and `prompt`, `allow`)")
            yield row


def _judge_log(judge: CategoryJudge, path: Path, default: SafetyConfig, out: TextIO) -> None:
    def flush(batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        # One forward pass per pair, as the guard scores it: batched int8 scores move with padding.
        scores = judge.score_each([str(r.get("prompt", "")) for r in batch], [r["response"] for r in batch])
        for row, row_scores in zip(batch, scores, strict=True):
            config = _config(None, row["allow"]) if "allow" in row else default
            result = verdict_json(judge.verdict(config, row_scores))
            out.write(json.dumps({**row, **result}, ensure_ascii=False) + "\n")

    batch: list[dict[str, Any]] = []
    for row in _rows(path):
        batch.append(row)
        if len(batch) == _BATCH:
            flush(batch)
            batch = []
    flush(batch)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from cosa_guard.judges.category import CategoryJudge
    from cosa_guard.types import Message

    if args.file is None and args.response is None:
        print("error: give a JSONL FILE or --response (see `cosa-guard judge --help`)", file=sys.stderr)
        return 2
    config = _config(args.config, _split(args.allow))
    judge = CategoryJudge.load(args.weights, threshold=args.threshold)
    if args.file is not None:
        out: TextIO = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
        try:
            _judge_log(judge, args.file, config, out)
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
    messages = [Message(role="user", content=args.prompt)] if args.prompt else []
    verdict = asyncio.run(judge.judge(config, messages, args.response))
    print(json.dumps(verdict_json(verdict), indent=2))
    return 0
