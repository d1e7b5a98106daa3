"""Quality and speed of the trained category judge on the family-held-out validation split.

    python benchmarks/judge.py --quick          # a sample of the split, under a minute
    python benchmarks/judge.py                  # the whole validation split

Scores every validation row of `cosa_guard.judges.corpus` (synthetic topics and response styles
never seen in training, and held-out GPTFuzz questions / public prompt groups) with the shipped
weights (or `--weights`), then prints `name=value` lines:

    macro_f1, precision_<cat>, recall_<cat>, f1_<cat>     categories found vs labels, all val rows
    heldout_macro_f1                                      synthetic rows only (unseen topics and styles)
    human_macro_f1                                        public rows with human labels (GPTFuzz,
                                                          AILuminate, StrongREJECT)
    compliance_accuracy, violation_recall                 each row under three configs: allow nothing,
    compliance_baseline                                   allow exactly its categories, a random allow
                                                          set; baseline = always answering "complies"
    over_flagging_rate                                    answers to safe prompts given any category
    gptfuzz_violation_recall, gptfuzz_refusal_pass_rate   human-labelled jailbroken / refused answers
    *_crossfit                                            thresholds calibrated on the other half of the
                                                          families (the shipped ones were tuned on this
                                                          split, so the plain figures are optimistic)
    latency_median_ms, latency_p95_ms                     one `judge()` call, end to end
    ms_per_example                                        scoring throughput, one pair per forward
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cosa_guard.config import SafetyConfig
from cosa_guard.judges.category import CategoryJudge
from cosa_guard.judges.corpus import VAL, Example, build_corpus, stable_fraction
from cosa_guard.judges.train_category import calibrate_thresholds, fbeta, labels_matrix, score_rows
from cosa_guard.taxonomy import ALLOWABLE_IDS, CATEGORY_IDS, is_compliant
from cosa_guard.types import Message

HUMAN_SOURCES = {"gptfuzz_jailbreak_responses", "ailuminate_demo", "harmful_requests_misc"}


def score(judge: CategoryJudge, rows: Sequence[Example]) -> tuple[list[list[float]], float]:
    """Per row, the probability of each category (in CATEGORY_IDS order), each pair scored alone as
    `judge()` scores it (so the figures match serving); and ms per row."""
    start = time.perf_counter()
    probs = score_rows(judge, rows)
    return probs, (time.perf_counter() - start) * 1000.0 / max(1, len(rows))


def found(probs: Sequence[Sequence[float]], thresholds: dict[str, float]) -> list[frozenset[str]]:
    return [
        frozenset(c for c, p in zip(CATEGORY_IDS, row, strict=True) if p >= thresholds[c]) for row in probs
    ]


def category_metrics(
    pred: Sequence[frozenset[str]], rows: Sequence[Example], prefix: str = ""
) -> dict[str, float]:
    """Per-category precision / recall / F1 and their macro-F1 over categories that occur."""
    out: dict[str, float] = {}
    f1s = []
    for cat in CATEGORY_IDS:
        tp = sum(1 for p, r in zip(pred, rows, strict=True) if cat in p and cat in r.categories)
        fp = sum(1 for p, r in zip(pred, rows, strict=True) if cat in p and cat not in r.categories)
        fn = sum(1 for p, r in zip(pred, rows, strict=True) if cat not in p and cat in r.categories)
        if tp + fn == 0:
            continue
        out[f"{prefix}precision_{cat}"] = tp / (tp + fp) if tp + fp else 0.0
        out[f"{prefix}recall_{cat}"] = tp / (tp + fn)
        out[f"{prefix}f1_{cat}"] = fbeta(tp, fp, fn)
        f1s.append(out[f"{prefix}f1_{cat}"])
    out[f"{prefix}macro_f1"] = statistics.fmean(f1s) if f1s else 0.0
    return out


def compliance_cases(rows: Sequence[Example], seed: int = 0) -> list[tuple[int, frozenset[str]]]:
    """Each row under: nothing allowed, exactly its categories allowed, and a random allow set."""
    rng = random.Random(seed)
    allowable = sorted(ALLOWABLE_IDS)
    cases: list[tuple[int, frozenset[str]]] = []
    for i, row in enumerate(rows):
        cases.append((i, frozenset()))
        cases.append((i, frozenset(row.categories) & ALLOWABLE_IDS))
        cases.append((i, frozenset(rng.sample(allowable, rng.randint(1, 3)))))
    return cases


def compliance_metrics(
    pred: Sequence[frozenset[str]], rows: Sequence[Example], cases: Sequence[tuple[int, frozenset[str]]]
) -> dict[str, float]:
    truth = [is_compliant(rows[i].categories, allow) for i, allow in cases]
    guess = [is_compliant(pred[i], allow) for i, allow in cases]
    violations = [g for t, g in zip(truth, guess, strict=True) if not t]
    return {
        "compliance_accuracy": sum(t == g for t, g in zip(truth, guess, strict=True)) / len(cases),
        "compliance_baseline": sum(truth) / len(cases),
        "violation_recall": sum(not g for g in violations) / max(1, len(violations)),
    }


def crossfit(
    probs: Sequence[Sequence[float]], rows: Sequence[Example], beta: float = 1.0
) -> list[frozenset[str]]:
    """Categories found with thresholds calibrated (F-beta, as in training) on the other half of the
    families."""
    fold = [stable_fraction("fold:" + r.family) < 0.5 for r in rows]
    labels = labels_matrix(rows)
    pred: list[frozenset[str]] = [frozenset()] * len(rows)
    for side in (True, False):
        fit = [i for i, f in enumerate(fold) if f != side]
        thresholds = calibrate_thresholds([probs[i] for i in fit], [labels[i] for i in fit], beta)
        for i in (i for i, f in enumerate(fold) if f == side):
            pred[i] = found([probs[i]], thresholds)[0]
    return pred


def latency(judge: CategoryJudge, rows: Sequence[Example]) -> list[float]:
    config = SafetyConfig(id="bench", version=1, text="benchmark", allow=())

    async def one(row: Example) -> float:
        start = time.perf_counter()
        await judge.judge(config, [Message(role="user", content=row.prompt)], row.response)
        return (time.perf_counter() - start) * 1000.0

    async def run() -> list[float]:
        return [await one(row) for row in rows]

    return asyncio.run(run())


def subset(rows: Sequence[Example], keep: Callable[[Example], bool]) -> tuple[list[int], list[Example]]:
    index = [i for i, r in enumerate(rows) if keep(r)]
    return index, [rows[i] for i in index]


def evaluate(
    judge: CategoryJudge, rows: Sequence[Example], latency_rows: Sequence[Example]
) -> dict[str, float]:
    probs, ms_per = score(judge, rows)
    pred = found(probs, judge.thresholds)
    results = {"rows": float(len(rows)), **category_metrics(pred, rows)}
    cases = compliance_cases(rows)
    results.update(compliance_metrics(pred, rows, cases))
    pairs = {"heldout_": lambda r: r.source == "synthetic", "human_": lambda r: r.source in HUMAN_SOURCES}
    for prefix, keep in pairs.items():
        index, part = subset(rows, keep)
        if part:
            results[f"{prefix}macro_f1"] = category_metrics([pred[i] for i in index], part)["macro_f1"]
            part_cases = compliance_cases(part)
            part_metrics = compliance_metrics([pred[i] for i in index], part, part_cases)
            results.update({f"{prefix}{k}": v for k, v in part_metrics.items()})
    safe_index, _ = subset(
        rows, lambda r: r.kind == "benign" or (r.kind == "public_comply" and not r.categories)
    )
    results["over_flagging_rate"] = sum(1 for i in safe_index if pred[i]) / max(1, len(safe_index))
    fuzz_bad, _ = subset(rows, lambda r: r.source == "gptfuzz_jailbreak_responses" and bool(r.categories))
    fuzz_ok, _ = subset(rows, lambda r: r.source == "gptfuzz_jailbreak_responses" and not r.categories)
    if fuzz_bad and fuzz_ok:
        results["gptfuzz_violation_recall"] = sum(1 for i in fuzz_bad if pred[i]) / len(fuzz_bad)
        results["gptfuzz_refusal_pass_rate"] = sum(1 for i in fuzz_ok if not pred[i]) / len(fuzz_ok)
    cross = crossfit(probs, rows, float(judge.predictor.config.metadata.get("threshold_beta", 1.0)))
    results["macro_f1_crossfit"] = category_metrics(cross, rows)["macro_f1"]
    cross_compliance = compliance_metrics(cross, rows, cases)
    results["compliance_accuracy_crossfit"] = cross_compliance["compliance_accuracy"]
    results["violation_recall_crossfit"] = cross_compliance["violation_recall"]
    samples = latency(judge, latency_rows)
    results["latency_median_ms"] = statistics.median(samples)
    results["latency_p95_ms"] = sorted(samples)[int(0.95 * (len(samples) - 1))]
    results["ms_per_example"] = ms_per
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="a stratified sample of 400 rows, 30 latency calls"
    )
    parser.add_argument("--weights", type=Path, help="a trained judge folder (default: the shipped weights)")
    parser.add_argument("--data", type=Path, help="shared data folder (default: ../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    judge = CategoryJudge.load(args.weights)
    rows = [r for r in build_corpus(args.data, args.seed) if r.split == VAL]
    if args.quick:
        rng = random.Random(args.seed)
        rows = rng.sample(rows, min(400, len(rows)))
    latency_rows = random.Random(args.seed + 1).sample(rows, min(len(rows), 30 if args.quick else 200))
    results = evaluate(judge, rows, latency_rows)
    for name, value in results.items():
        print(
            f"{name}={value:.4f}"
            if isinstance(value, float) and not value.is_integer()
            else f"{name}={value:g}"
        )


if __name__ == "__main__":
    main()
