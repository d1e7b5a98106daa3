"""Quality and speed of the trained category judge on the corpus and real-traffic validation splits.

    python benchmarks/judge.py --quick          # a sample of the split, under a minute
    python benchmarks/judge.py                  # the whole validation split
    python benchmarks/judge.py --scores S.json  # keep the scores: a re-run on the same weights is instant

Needs the training distribution (`pip install -e training`), which holds the corpora.

Scores every validation row of `cosa_guard_training.detectors.judge_corpus` (synthetic topics and
response styles never seen in training, and held-out GPTFuzz questions / public prompt groups) with
the shipped weights (or `--weights`), then prints `name=value` lines:

    macro_f1, precision_<cat>, recall_<cat>, f1_<cat>     categories found vs labels, all val rows
    heldout_macro_f1                                      synthetic rows only (unseen topics and styles)
    human_macro_f1                                        public rows with human labels (GPTFuzz,
                                                          AILuminate, StrongREJECT)
    compliance_accuracy, violation_recall                 each row under three configs: allow nothing,
    compliance_baseline                                   allow exactly its categories, a random allow
                                                          set; baseline = always answering "complies"
    over_flagging_rate                                    answers to safe prompts given any category
    gptfuzz_violation_recall, gptfuzz_refusal_pass_rate   human-labelled jailbroken / refused answers
    *_crossfit                                            thresholds calibrated as in training (F-beta,
                                                          then the real benign cap) on the other half of
                                                          the families of the validation splits the judge
                                                          was calibrated on (the shipped thresholds were
                                                          tuned on them: the plain figures are optimistic);
                                                          for real_fpr, real_violation_recall,
                                                          real_compliance_accuracy,
                                                          real_jbb_compliance_accuracy,
                                                          real_fpr_source_phtest, real_fpr_len_1000_4999

and, on the real-traffic validation split (`cosa_guard_training.detectors.judge_real`: real exchanges from
held-out groups, never trained on; no category allowed unless said):

    real_fpr                                              good answers (MedQuAD, GSM8K, PHTest answers
                                                          and refusals to harmless prompts) given any
                                                          category
    real_fpr_<language group>, real_fpr_len_<bucket>      the same per language group and per response
    real_fpr_source_<source>                              length bucket (lt200, 200_999, 1000_4999,
                                                          5000plus), and per source
    real_controversial_flag_rate                          PHTest answers to controversial prompts given a
                                                          category (may hold risky content: not a FPR)
    real_violation_recall, real_refusal_pass_rate         JailbreakBench answers judged jailbroken that
                                                          are flagged / judged not jailbroken that pass
    real_compliance_accuracy, real_violation_recall_3cfg  every real row under the three configs above
    real_jbb_compliance_accuracy                          JailbreakBench rows only, three configs
    real_jbb_handlabelled_compliance_accuracy             the same with hand-assigned categories per
                                                          behaviour (benchmarks/data/
                                                          jbb_behaviour_categories.yaml) in place of
                                                          the one-category hint; real_jbb_handlabelled_rows
    handwritten_sensitive_flagged[_<kind>]                hand-written good answers to safe questions that
                                                          sound sensitive (benchmarks/data, never trained
                                                          or calibrated on) given any category, overall
                                                          and per kind (homonym, safety, history, ...)
    latency_median_ms, latency_p95_ms                     one `judge()` call, end to end
    ms_per_example                                        scoring throughput, one pair per forward
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from cosa_guard_training.detectors.judge_corpus import (
    VAL,
    Example,
    build_corpus,
    default_data_dir,
    stable_fraction,
)
from cosa_guard_training.detectors.judge_real import (
    BENIGN_KINDS,
    CONTROVERSIAL,
    JAILBROKEN,
    NOT_JAILBROKEN,
    SHORT_NAMES,
    real_pairs,
    source_name,
)
from cosa_guard_training.detectors.judge_train import cached_scores, calibrate, fbeta
from cosa_guard_training.detectors.real_traffic import RealRow, length_bucket

from cosa_guard.config import SafetyConfig
from cosa_guard.judges.category import WEIGHTS_DIR, CategoryJudge
from cosa_guard.taxonomy import ALLOWABLE_IDS, CATEGORY_IDS, is_compliant
from cosa_guard.types import Message

CROSSFIT_REAL = (
    "real_fpr",
    "real_violation_recall",
    "real_compliance_accuracy",
    "real_jbb_compliance_accuracy",
    "real_jbb_handlabelled_compliance_accuracy",
)
HUMAN_SOURCES = {"gptfuzz_jailbreak_responses", "ailuminate_demo", "harmful_requests_misc"}


def score(
    judge: CategoryJudge, rows: Sequence[Example], weights: Path, cache: Path | None
) -> tuple[list[list[float]], float]:
    """Per row, the probability of each category (in CATEGORY_IDS order), each pair scored alone as
    `judge()` scores it (so the figures match serving), reusing the scores file `cache` when it
    holds these weights' scores; and ms per row (NaN when every row came from the file)."""
    start = time.perf_counter()
    probs = cached_scores(judge, rows, weights, cache)
    elapsed = (time.perf_counter() - start) * 1000.0
    return probs, elapsed / max(1, len(rows)) if cache is None else float("nan")


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
    probs: Sequence[Sequence[float]],
    rows: Sequence[Example],
    beta: float = 1.0,
    max_benign_fpr: float | None = None,
    fit_on: Sequence[bool] | None = None,
    *,
    per_source: bool = False,
) -> list[frozenset[str]]:
    """Categories found with thresholds calibrated (as in training) on the other half of the families;
    only rows marked in `fit_on` (default: all) are calibrated on."""
    fold = [stable_fraction("fold:" + r.family) < 0.5 for r in rows]
    usable = list(fit_on) if fit_on is not None else [True] * len(rows)
    pred: list[frozenset[str]] = [frozenset()] * len(rows)
    for side in (True, False):
        fit = [i for i, f in enumerate(fold) if f != side and usable[i]]
        thresholds = calibrate(
            [probs[i] for i in fit], [rows[i] for i in fit], beta, max_benign_fpr, per_source=per_source
        )
        for i in (i for i, f in enumerate(fold) if f == side):
            pred[i] = found([probs[i]], thresholds)[0]
    return pred


def rate(hits: Sequence[bool]) -> float:
    return sum(hits) / max(1, len(hits))


def real_metrics(
    pred: Sequence[frozenset[str]], pairs: Sequence[tuple[RealRow, Example]]
) -> dict[str, float]:
    """The `real_*` figures (see the module docstring) for categories `pred` found on `pairs`."""
    rows = [ex for _, ex in pairs]
    benign = [i for i, ex in enumerate(rows) if ex.kind in BENIGN_KINDS]
    out = {"real_rows": float(len(rows)), "real_fpr": rate([bool(pred[i]) for i in benign])}
    slices: dict[str, list[int]] = {}
    for i in benign:
        row = pairs[i][0]
        slices.setdefault(row.language_group, []).append(i)
        slices.setdefault(f"len_{length_bucket(row.response)}", []).append(i)
        slices.setdefault(f"source_{SHORT_NAMES.get(source_name(row), source_name(row))}", []).append(i)
    for name, index in sorted(slices.items()):
        out[f"real_fpr_{name}"] = rate([bool(pred[i]) for i in index])
    kinds = {
        "real_controversial_flag_rate": (CONTROVERSIAL, True),
        "real_violation_recall": (JAILBROKEN, True),
        "real_refusal_pass_rate": (NOT_JAILBROKEN, False),
    }
    for name, (kind, flag) in kinds.items():
        index = [i for i, ex in enumerate(rows) if ex.kind == kind]
        if index:
            out[name] = rate([bool(pred[i]) == flag for i in index])
    judged = [i for i, ex in enumerate(rows) if ex.kind != CONTROVERSIAL]
    jbb = [i for i in judged if rows[i].kind in (JAILBROKEN, NOT_JAILBROKEN)]
    labelled = handlabelled(pairs, jbb, jbb_behaviour_categories())
    hand = [ex for _, ex in labelled]
    for prefix, index, part in (
        ("real_", judged, [rows[i] for i in judged]),
        ("real_jbb_", jbb, [rows[i] for i in jbb]),
        ("real_jbb_handlabelled_", [i for i, _ in labelled], hand),
    ):
        if index:
            metrics = compliance_metrics([pred[i] for i in index], part, compliance_cases(part))
            out[f"{prefix}compliance_accuracy"] = metrics["compliance_accuracy"]
            if prefix == "real_":
                out["real_violation_recall_3cfg"] = metrics["violation_recall"]
    if hand:
        out["real_jbb_handlabelled_rows"] = float(len(hand))
    return out


JBB_CATEGORIES = Path(__file__).resolve().parent / "data" / "jbb_behaviour_categories.yaml"


@functools.cache  # real_metrics runs twice per benchmark (plain and cross-fit)
def jbb_behaviour_categories(path: Path = JBB_CATEGORIES) -> Mapping[str, frozenset[str]]:
    """Hand-assigned categories per JailbreakBench behaviour (see benchmarks/data/README.md)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(name): frozenset(cats) for name, cats in data["behaviours"].items()}


def handlabelled(
    pairs: Sequence[tuple[RealRow, Example]], index: Sequence[int], labels: Mapping[str, frozenset[str]]
) -> list[tuple[int, Example]]:
    """The JailbreakBench rows of `index` whose behaviour has hand-assigned categories: jailbroken
    answers carry those instead of the builder's one-category hint, refusals still carry none."""
    out = []
    for i in index:
        row, ex = pairs[i]
        cats = labels.get(str(row.meta.get("behavior", "")))
        if cats is not None:
            out.append((i, replace(ex, categories=tuple(sorted(cats))) if ex.kind == JAILBROKEN else ex))
    return out


HANDWRITTEN = Path(__file__).resolve().parent / "data" / "sensitive_safe_answers.jsonl"


def handwritten_flags(judge: CategoryJudge, path: Path = HANDWRITTEN) -> dict[str, float]:
    """`handwritten_sensitive_flagged[_<kind>]`: hand-written safe answers given any category."""
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scored = judge.score_each([c["prompt"] for c in cases], [c["response"] for c in cases])
    flagged = [bool(f) for f in found([[row[c] for c in CATEGORY_IDS] for row in scored], judge.thresholds)]
    out = {"handwritten_sensitive_flagged": rate(flagged)}
    for kind in sorted({c["kind"] for c in cases}):
        out[f"handwritten_sensitive_flagged_{kind}"] = rate(
            [f for f, c in zip(flagged, cases, strict=True) if c["kind"] == kind]
        )
    return out


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
    judge: CategoryJudge,
    rows: Sequence[Example],
    latency_rows: Sequence[Example],
    real: Sequence[tuple[RealRow, Example]] = (),
    *,
    weights: Path = WEIGHTS_DIR,
    cache: Path | None = None,
) -> dict[str, float]:
    probs, ms_per = score(judge, rows, weights, cache)
    real_probs = score(judge, [ex for _, ex in real], weights, cache)[0] if real else []
    results = quality(probs, rows, real_probs, real, judge.thresholds, judge.predictor.config.metadata)
    results.update(handwritten_flags(judge))
    samples = latency(judge, latency_rows)
    results["latency_median_ms"] = statistics.median(samples)
    results["latency_p95_ms"] = sorted(samples)[int(0.95 * (len(samples) - 1))]
    results["ms_per_example"] = ms_per
    return results


def quality(
    probs: Sequence[Sequence[float]],
    rows: Sequence[Example],
    real_probs: Sequence[Sequence[float]],
    real: Sequence[tuple[RealRow, Example]],
    thresholds: dict[str, float],
    metadata: Mapping[str, Any],
) -> dict[str, float]:
    """Every figure but speed, from the scores of the corpus and real validation rows."""
    pred = found(probs, thresholds)
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
    real_rows = [ex for _, ex in real]
    results.update(real_metrics(found(real_probs, thresholds), real) if real else {})
    # Cross-fit as the judge was calibrated: judges calibrated before real traffic existed (no
    # `max_benign_fpr` in their metadata) fit on the corpus rows only; controversial rows never count.
    fit = [i for i, ex in enumerate(real_rows) if ex.kind != CONTROVERSIAL]
    on_real = "max_benign_fpr" in metadata
    cross_all = crossfit(
        [*probs, *(real_probs[i] for i in fit)],
        [*rows, *(real_rows[i] for i in fit)],
        float(metadata.get("threshold_beta", 1.0)),
        metadata.get("max_benign_fpr"),
        [True] * len(rows) + [on_real] * len(fit),
        per_source=bool(metadata.get("benign_cap_per_source", False)),
    )
    cross = cross_all[: len(rows)]
    results["macro_f1_crossfit"] = category_metrics(cross, rows)["macro_f1"]
    cross_compliance = compliance_metrics(cross, rows, cases)
    results["compliance_accuracy_crossfit"] = cross_compliance["compliance_accuracy"]
    results["violation_recall_crossfit"] = cross_compliance["violation_recall"]
    if fit:
        real_cross = real_metrics(cross_all[len(rows) :], [real[i] for i in fit])
        # The sensitive-sounding source, long answers and JailbreakBench rows are where the owner's
        # sets differ from the pooled figures (issue 14).
        for name in (*CROSSFIT_REAL, "real_fpr_source_phtest", "real_fpr_len_1000_4999"):
            if name in real_cross:
                results[f"{name}_crossfit"] = real_cross[name]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="a stratified sample of 400 rows, 30 latency calls"
    )
    parser.add_argument("--weights", type=Path, help="a trained judge folder (default: the shipped weights)")
    parser.add_argument("--data", type=Path, help="shared data folder (default: ../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-real", action="store_true", help="skip the real-traffic validation split")
    parser.add_argument(
        "--scores",
        type=Path,
        help="a scores file to reuse and extend: a re-run on the same weights (say after "
        "`cosa-guard train judge --calibrate-only --scores FILE`) skips scoring; ms_per_example is then NaN",
    )
    args = parser.parse_args()
    judge = CategoryJudge.load(args.weights)
    rows = [r for r in build_corpus(args.data, args.seed) if r.split == VAL]
    root = args.data if args.data is not None else default_data_dir()
    real = [] if args.no_real or root is None else [p for p in real_pairs(root) if p[1].split == VAL]
    if args.quick:
        rng = random.Random(args.seed)
        rows = rng.sample(rows, min(400, len(rows)))
        real = rng.sample(real, min(400, len(real)))
    latency_rows = random.Random(args.seed + 1).sample(rows, min(len(rows), 30 if args.quick else 200))
    weights = args.weights if args.weights is not None else WEIGHTS_DIR
    results = evaluate(judge, rows, latency_rows, real, weights=weights, cache=args.scores)
    for name, value in results.items():
        print(
            f"{name}={value:.4f}"
            if isinstance(value, float) and not value.is_integer()
            else f"{name}={value:g}"
        )


if __name__ == "__main__":
    main()
