"""Choose the classifier's threshold and window discount under false-positive budgets.

The verdict is `decisive structural rule OR window_score(windows, discount) >= threshold`. A
budget is a set of benign texts and the largest share of them the whole detector may flag
(synthetic hard negatives 2 %, real traffic 1 % overall and in each length bucket, each language
group of real traffic 2 %). For each candidate discount the threshold is the lowest that keeps every
budget. The discount kept is the largest whose attack recall is within `RECALL_TOLERANCE` of
the best candidate's: the calibration texts come from sources the encoder trained on, where long
texts look easy, so calibration alone cannot see how much a long text from an unseen source needs
the discount, and with the window screen recall hardly depends on it (measured: 0.966 at 0,
0.964 at 1). Candidates stop at 1, which exactly cancels the extra chances of independent
windows; more would make a long text *less* likely to be flagged than a short one, which only
helps an attacker who pads. Nothing here reads a model: it works on the per-window
probabilities that training scored through the serving path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cosa_guard.injection.classifier import window_score

DISCOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)
RECALL_TOLERANCE = 0.005
MIN_BUDGET_ROWS = 50  # below this a budget is too noisy to bind (1 % of 50 allows no false positive)


def calibrate(
    scores: Sequence[float], labels: Sequence[int], flags: Sequence[bool], target_fpr: float
) -> float:
    """The lowest threshold at which (decisive structural OR score >= t) keeps FPR <= target_fpr.

    When the structural rules alone exceed the budget, the classifier must not add to it: the
    threshold is then just above every benign score.
    """
    negatives = [(s, f) for s, f, y in zip(scores, flags, labels, strict=True) if not y]
    free = sorted((s for s, f in negatives if not f), reverse=True)
    remaining = max(0, math.floor(target_fpr * len(negatives)) - sum(f for _, f in negatives))
    if remaining >= len(free):
        return 0.5
    # Strictly above the (remaining+1)-th highest benign score: at most `remaining` benign turns pass.
    return float(math.nextafter(free[remaining], 2.0))


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `fpr` of the benign texts `members` (indices) may be flagged."""

    name: str
    members: tuple[int, ...]
    fpr: float


@dataclass(frozen=True, slots=True)
class WindowRule:
    discount: float
    threshold: float
    recall: float
    fprs: dict[str, float]  # flagged share of each budget's texts at this threshold
    worst_use: float  # the largest share of its limit any binding budget uses (1.0: at the limit)


def threshold_for(scores: Sequence[float], flags: Sequence[bool], budgets: Sequence[Budget]) -> float:
    """The lowest threshold that keeps every budget (budgets of fewer than MIN_BUDGET_ROWS skipped)."""
    cuts = [
        calibrate([scores[i] for i in b.members], [0] * len(b.members), [flags[i] for i in b.members], b.fpr)
        for b in budgets
        if len(b.members) >= MIN_BUDGET_ROWS
    ]
    return max(cuts, default=0.5)


def flagged_share(
    scores: Sequence[float], flags: Sequence[bool], members: Sequence[int], threshold: float
) -> float:
    return sum(flags[i] or scores[i] >= threshold for i in members) / max(1, len(members))


def fit_window_rule(
    windows: Sequence[Sequence[float]],
    labels: Sequence[int],
    flags: Sequence[bool],
    budgets: Sequence[Budget],
    discounts: Sequence[float] = DISCOUNTS,
) -> tuple[WindowRule, list[WindowRule]]:
    """The chosen rule and every candidate (for the metrics file)."""
    attacks = [i for i, y in enumerate(labels) if y]
    binding = [b for b in budgets if len(b.members) >= MIN_BUDGET_ROWS]
    candidates = []
    for discount in discounts:
        scores = [window_score(w, discount) for w in windows]
        threshold = threshold_for(scores, flags, budgets)
        fprs = {b.name: flagged_share(scores, flags, b.members, threshold) for b in budgets}
        recall = flagged_share(scores, flags, attacks, threshold)
        worst = max((fprs[b.name] / b.fpr for b in binding if b.fpr > 0), default=0.0)
        candidates.append(WindowRule(discount, threshold, recall, fprs, worst))
    top = max(c.recall for c in candidates)
    best = max((c for c in candidates if c.recall >= top - RECALL_TOLERANCE), key=lambda c: c.discount)
    return best, candidates
