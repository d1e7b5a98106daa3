"""Config-injection detector: recall, false-positive rate and latency on the family-held-out split.

    python benchmarks/injection.py [--quick] [--data-dir ../shared/data]

Rebuilds the corpus exactly as the shipped weights were trained (seed and size from their
metadata), keeps the validation split (template families, payload wordings and languages never
seen in training, plus the held-out part of the public sets), and scores every text through the
detector as the guard runs it: normaliser, structural rules, int8 classifier, shipped threshold.
Prints `name=value` lines: overall `recall=` and `fpr=`, the structural path alone, recall at a
re-tuned 1 % / 2 % FPR, one line per technique family, and per-turn latency (median / p95) of the
structural path and of the full path, one text at a time. `--quick` samples 12 texts per family (< 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from cosa_guard.injection import corpus
from cosa_guard.injection.classifier import WEIGHTS_DIR
from cosa_guard.injection.detector import InjectionDetector, TurnVerdict
from cosa_guard.injection.normalise import normalise
from cosa_guard.injection.structural import DECISIVE, scan
from cosa_guard.injection.train import calibrate

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def emit(name: str, value: float | int | str) -> None:
    print(f"{name}={value:.4f}" if isinstance(value, float) else f"{name}={value}")


def rates(rows: Sequence[corpus.Row], predicted: Sequence[bool]) -> tuple[float, float]:
    attacks = [p for p, r in zip(predicted, rows, strict=True) if r.label == corpus.ATTACK]
    benign = [p for p, r in zip(predicted, rows, strict=True) if r.label != corpus.ATTACK]
    return sum(attacks) / max(1, len(attacks)), sum(benign) / max(1, len(benign))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(detector: InjectionDetector, texts: Sequence[str]) -> tuple[list[float], list[float]]:
    """Per-text milliseconds for the structural path and for the full path (one text per call)."""
    structural_ms, full_ms = [], []
    for text in texts:
        start = time.perf_counter()
        scan(normalise(text))
        structural_ms.append((time.perf_counter() - start) * 1000)
    for text in texts:
        start = time.perf_counter()
        await detector.scan([text])
        full_ms.append((time.perf_counter() - start) * 1000)
    return structural_ms, full_ms


def token_count(text: str) -> int:
    from cosa_guard.encoder import load_tokenizer

    return len(load_tokenizer()(text, add_special_tokens=False, verbose=False)["input_ids"])


def longest_turn(rng: random.Random, tokens: int) -> str:
    """Preambles joined up to the longest text that stays within `tokens` tokens (the target's cap)."""
    text = rng.choice(corpus.PREAMBLES)
    while True:
        longer = f"{text} {rng.choice(corpus.PREAMBLES)}"
        if token_count(longer) > tokens:
            return text
        text = longer


def bipia_rows(data_dir: Path, limit: int) -> list[corpus.Row]:
    """Indirect injections (BIPIA instructions inside real emails), reported apart: not config attacks."""
    attacks = data_dir / "bipia_indirect_injection" / "bipia_attacks_train.jsonl"
    emails = data_dir / "bipia_indirect_injection" / "bipia_email_contexts_train.jsonl"
    if not (attacks.is_file() and emails.is_file()):
        return []
    instructions = [
        json.loads(x)["attack_instruction"] for x in attacks.read_text(encoding="utf-8").splitlines()
    ]
    contexts = [json.loads(x)["context"] for x in emails.read_text(encoding="utf-8").splitlines()]
    rng = random.Random(0)
    rows = []
    for _ in range(limit):
        email, instruction = rng.choice(contexts), rng.choice(instructions)
        cut = rng.randint(0, len(email))
        text = f"{email[:cut]}\n{instruction}\n{email[cut:]}"
        rows.append(corpus.Row(text, corpus.ATTACK, "bipia_indirect", "bipia", "validation", source="bipia"))
    return rows


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="12 texts per family, 50 timed (under 60 s)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="public sets (skipped when absent)")
    parser.add_argument("--weights", default=str(WEIGHTS_DIR), help="classifier weights directory")
    args = parser.parse_args(argv)

    from cosa_guard.injection.classifier import InjectionClassifier

    meta = json.loads((Path(args.weights) / "encoder.json").read_text(encoding="utf-8"))["metadata"]
    public = corpus.public_rows(args.data_dir)
    full = corpus.build_corpus(meta["seed"], meta["per_family"], public)
    if corpus.corpus_digest(full) != meta["corpus_sha256"]:
        print("# warning: this corpus differs from the one the weights were trained on", file=sys.stderr)
    rows = [r for r in full if r.split == "validation"]
    if not public:
        print("# ../shared/data absent: generated corpus only", file=sys.stderr)
    rng = random.Random(0)
    if args.quick:  # every family still shows up: sample per kind, not overall
        by_kind_rows: dict[str, list[corpus.Row]] = defaultdict(list)
        for r in rows:
            by_kind_rows[r.kind].append(r)
        rows = [
            r
            for kind in sorted(by_kind_rows)
            for r in rng.sample(by_kind_rows[kind], min(12, len(by_kind_rows[kind])))
        ]
    classifier = InjectionClassifier(args.weights)
    detector = InjectionDetector(classifier)
    classifier.warm_up()

    verdicts: list[TurnVerdict] = []
    for start in range(0, len(rows), 64):
        verdicts += await detector.scan([r.text for r in rows[start : start + 64]])
    structural = [
        any(f.score >= DECISIVE for f in v.findings if f.detector != "classifier") for v in verdicts
    ]
    scores = [v.classifier_score or 0.0 for v in verdicts]
    labels = [int(r.label == corpus.ATTACK) for r in rows]

    recall, fpr = rates(rows, [v.attack for v in verdicts])
    emit("texts", len(rows))
    emit("attacks", sum(labels))
    emit("benign", len(rows) - sum(labels))
    emit("threshold", classifier.threshold)
    emit("recall", recall)
    emit("fpr", fpr)
    s_recall, s_fpr = rates(rows, structural)
    emit("structural_recall", s_recall)
    emit("structural_fpr", s_fpr)
    for target in (0.01, 0.02):
        cut = calibrate(scores, labels, structural, target)
        r_at, f_at = rates(rows, [f or s >= cut for s, f in zip(scores, structural, strict=True)])
        emit(f"recall_at_fpr_{round(target * 100)}pct", r_at)
        emit(f"fpr_at_fpr_{round(target * 100)}pct", f_at)

    by_kind: dict[str, list[bool]] = defaultdict(list)
    for r, v in zip(rows, verdicts, strict=True):
        rate = "recall" if r.label == corpus.ATTACK else "fpr"
        by_kind[f"{rate}_{r.kind}"].append(v.attack)
        if r.source == "generated":  # encodings and languages cut across the template families
            by_kind[f"{rate}_encoding_{r.encoding}"].append(v.attack)
            by_kind[f"{rate}_language_{r.language}"].append(v.attack)
    for name, hits in sorted(by_kind.items()):
        emit(name, sum(hits) / len(hits))
        emit(f"n_{name.split('_', 1)[1]}", len(hits))

    indirect = bipia_rows(Path(args.data_dir), 50 if args.quick else 200)
    if indirect:
        found = await detector.scan([r.text for r in indirect])
        emit("recall_bipia_indirect_out_of_scope", sum(v.attack for v in found) / len(found))

    timed_texts = [r.text for r in rng.sample(rows, min(50 if args.quick else 400, len(rows)))]
    detector = InjectionDetector(classifier)  # fresh cache
    structural_ms, full_ms = await timed(detector, timed_texts)
    emit("latency_structural_median_ms", statistics.median(structural_ms))
    emit("latency_structural_p95_ms", percentile(structural_ms, 0.95))
    emit("latency_full_median_ms", statistics.median(full_ms))
    emit("latency_full_p95_ms", percentile(full_ms, 0.95))
    long_text = longest_turn(rng, 512)
    emit("long_turn_tokens", token_count(long_text))
    _, long_ms = await timed(
        InjectionDetector(classifier), [long_text + str(i) for i in range(3 if args.quick else 10)]
    )
    emit("latency_full_512_tokens_median_ms", statistics.median(long_ms))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
