"""Quality on held-out subjects and speed of the rule judge's scorer.

    python benchmarks/rule_judge.py                 # held-out figures + latency (a few minutes)
    python benchmarks/rule_judge.py --latency-only  # latency only, under a minute

Needs the training package on the path (`training/`, for the data builder) and ../shared/data
(`--data-dir`). Rebuilds the rule judge's corpus exactly as `cosa-guard train rules` does and
scores the validation pairs (subjects and rule template families training never saw; synthetic
rules over real and synthetic answers: these figures are about the scorer, not about real
configs) with the shipped head (or `--weights`), then times it. Prints `name=value` lines:

    heldout_pairs, heldout_positives, heldout_auc       validation (rule, request, answer) pairs
    heldout_<t>_{precision,recall,f1,fpr}               at the shipped `forbids` / `allows` thresholds
    heldout_hard_negative_fpr, heldout_refusal_fpr      rules about a related subject, and refusals,
    heldout_benign_fpr, heldout_partial_recall          benign answers, answers that end in a violation
    latency_answers, latency_answer_chars_median        the answers timed
    latency_median_ms_5rules_<n>threads                 one `RuleScorer.score` call for a 5-rule config
    latency_p95_ms_5rules_<n>threads                    (rule embeddings cached, as in serving), over
                                                        real held-out answers, with 1 and 2 torch threads
    latency_category_median_ms_1threads                 the category judge alone on the same answers
    latency_judge_median_ms_5rules                      one `RuleJudge.judge_rules` call, end to end
                                                        (scorer and category floor in parallel)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from cosa_guard_training.rule_judge.corpus import VAL, Answer, Inventory, build_answers, build_pairs
from cosa_guard_training.rule_judge.embed import embed_corpus, near_duplicates
from cosa_guard_training.rule_judge.train import pair_tensors, predict, report

from cosa_guard.config import SafetyConfig
from cosa_guard.judges.rule_model import RuleScorer
from cosa_guard.judges.rules import RuleJudge
from cosa_guard.rules import Rule
from cosa_guard.types import Message

FIVE_RULES = (
    Rule(
        number=1,
        text="We allow violent content, including graphic scenes of fights or wars.",
        polarity="allows",
        categories=("violence",),
    ),
    Rule(
        number=2,
        text="but excludes severed body parts or limbs.",
        polarity="forbids",
        categories=("violence",),
        exception_of=1,
    ),
    Rule(
        number=3,
        text="Hateful content based on religion, ethnicity, race or sex is strictly prohibited.",
        polarity="forbids",
        categories=("discrimination",),
    ),
    Rule(number=4, text="No pork or pig-derived products such as bacon, ham or lard.", polarity="forbids"),
    Rule(
        number=5,
        text="Only minor sexual content is permissible, such as romantic gestures.",
        polarity="allows",
        categories=("sexual",),
    ),
)


def corpus(scorer: RuleScorer, data_dir: Path, seed: int) -> tuple[Inventory, list[Answer]]:
    """The training run's inventory and answers (same seed, same near-duplicate merging)."""
    inv, _ = build_answers(data_dir, seed)
    return build_answers(data_dir, seed, near_duplicates(inv, scorer.embedder))


def held_out(
    scorer: RuleScorer, inv: Inventory, answers: list[Answer], cache: Path, seed: int
) -> dict[str, object]:
    pairs = [p for p in build_pairs(inv, answers, seed) if p.split == VAL]
    used = [a for a in answers if a.id in {p.answer for p in pairs}]
    tuned = scorer.answers if scorer.tower is not None else None  # its windows change with its weights
    emb = embed_corpus(
        scorer.embedder, used, pairs, scorer.config, cache, progress=False, answer_embedder=tuned
    )
    scores = predict(scorer.head, pair_tensors(pairs, emb))
    stored = scorer.config.metadata["thresholds"]
    thresholds = {k: float(stored[k]) for k in ("forbids", "allows")}
    return report(scores, pairs, {a.id: a for a in answers}, thresholds)


def latency(score: Callable[[Answer], object], answers: list[Answer], threads: int) -> tuple[float, float]:
    """Median and p95 milliseconds of `score` per answer, with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for a in answers[:5]:
            score(a)  # warm-up; fills the rule cache as serving does
        times = []
        for a in answers:
            start = time.perf_counter()
            score(a)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(before)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


async def judge_latency(judge: RuleJudge, answers: list[Answer]) -> float:
    config = SafetyConfig(id="bench", version=1, text="benchmark", allow=("violence",))
    times = []
    for a in answers:
        start = time.perf_counter()
        await judge.judge_rules(config, FIVE_RULES, [Message(role="user", content=a.request)], a.response)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, help="rule judge weights (default: the shipped ones)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/cosa_guard_rule_judge"))
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--samples", type=int, default=100, help="answers timed per thread count")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    judge = RuleJudge.load(args.weights)
    scorer = judge.scorer
    inv, answers = corpus(scorer, args.data_dir, args.seed)
    if not args.latency_only:
        for key, value in held_out(scorer, inv, answers, args.cache_dir, args.seed).items():
            if isinstance(value, dict):
                for name, number in value.items():
                    print(f"heldout_{key}_{name}={number}")
            else:
                print(f"heldout_{key}={value}")
    real = [a for a in answers if a.split == VAL and a.kind in ("jailbroken", "benign", "refusal")]
    sample = random.Random(args.seed).sample(real, min(args.samples, len(real)))
    print(f"latency_answers={len(sample)}")
    print(f"latency_answer_chars_median={statistics.median(len(a.response) for a in sample):.0f}")
    texts = [r.text for r in FIVE_RULES]
    for threads in (1, 2):
        median, p95 = latency(lambda a: scorer.score(texts, a.request, a.response), sample, threads)
        print(f"latency_median_ms_5rules_{threads}threads={median:.1f}")
        print(f"latency_p95_ms_5rules_{threads}threads={p95:.1f}")
    # The category judge on the same answers, same thread count: a reference that the box's load
    # affects the same way.
    median, _ = latency(lambda a: judge.category.score_each([a.request], [a.response]), sample, 1)
    print(f"latency_category_median_ms_1threads={median:.1f}")
    print(f"latency_judge_median_ms_5rules={asyncio.run(judge_latency(judge, sample[:40])):.1f}")


if __name__ == "__main__":
    main()
