"""The window rule: a long text's score is discounted by its window count, fit under FPR budgets."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from cosa_guard_training.detectors.injection_calibration import (
    DISCOUNTS,
    RECALL_TOLERANCE,
    Budget,
    fit_window_rule,
    threshold_for,
)

from cosa_guard.injection.classifier import InjectionClassifier, window_score


@pytest.mark.parametrize("discount", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("p", [0.01, 0.5, 0.97, 0.9999])
def test_repeating_a_window_never_raises_the_score(discount: float, p: float) -> None:
    short = window_score([p], discount)
    assert short == pytest.approx(p)
    scores = [window_score([p] * n, discount) for n in (1, 2, 5, 40)]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(scores))
    if discount:
        assert scores[-1] < short


def test_a_long_benign_text_of_repeated_windows_is_not_flagged_more_than_its_short_form() -> None:
    threshold = 0.9
    for p in (0.5, 0.89, 0.9, 0.95):
        for discount in (0.0, 1.0):
            long_flagged = window_score([p] * 30, discount) >= threshold
            assert long_flagged <= (window_score([p], discount) >= threshold)


def test_discount_zero_is_the_plain_maximum() -> None:
    assert window_score([0.1, 0.7, 0.3], 0.0) == pytest.approx(0.7)


def test_discount_one_offsets_the_log_of_the_window_count() -> None:
    # logit(0.99) - ln(4) = ln(99 / 4)
    assert window_score([0.99, 0.1, 0.1, 0.1], 1.0) == pytest.approx(99 / 103)


def _synthetic_windows(rng: random.Random) -> tuple[list[list[float]], list[int], list[Budget]]:
    """Short benign texts (one window), long benign ones (20 windows of the same score law) and
    attacks (one strong window, some in long texts)."""
    windows: list[list[float]] = []
    labels: list[int] = []
    for _ in range(400):
        windows.append([rng.betavariate(1, 12)])
        labels.append(0)
    for _ in range(400):
        windows.append([rng.betavariate(1, 12) for _ in range(20)])
        labels.append(0)
    for i in range(200):
        strong = rng.uniform(0.25, 0.6)
        windows.append([strong] + [rng.betavariate(1, 12) for _ in range(19 if i % 2 else 0)])
        labels.append(1)
    budgets = [
        Budget("real_len_lt200", tuple(range(400)), 0.02),
        Budget("real_len_1000_4999", tuple(range(400, 800)), 0.02),
    ]
    return windows, labels, budgets


def test_fit_keeps_every_budget_and_picks_a_discount_for_long_texts() -> None:
    windows, labels, budgets = _synthetic_windows(random.Random(0))
    flags = [False] * len(windows)
    rule, candidates = fit_window_rule(windows, labels, flags, budgets)
    assert all(fpr <= 0.02 for fpr in rule.fprs.values())
    plain = next(c for c in candidates if c.discount == 0.0)
    assert rule.discount > 0.0 and rule.recall > plain.recall
    assert rule.recall >= max(c.recall for c in candidates) - RECALL_TOLERANCE


def test_among_discounts_of_equal_recall_the_largest_is_kept() -> None:
    # Every attack is one strong window and every benign text one weak one: the discount changes
    # nothing, so the rule keeps the one that guards long texts best.
    windows = [[0.9]] * 50 + [[0.1]] * 200
    labels = [1] * 50 + [0] * 200
    budgets = [Budget("real", tuple(range(50, 250)), 0.01)]
    rule, candidates = fit_window_rule(windows, labels, [False] * 250, budgets)
    assert {c.recall for c in candidates} == {1.0}
    assert rule.discount == max(DISCOUNTS) == 1.0


def test_budgets_too_small_to_measure_do_not_bind() -> None:
    scores = [0.99] + [0.1] * 40
    assert threshold_for(scores, [False] * 41, [Budget("tiny", tuple(range(41)), 0.01)]) == 0.5
    scores += [0.1] * 60
    assert threshold_for(scores, [False] * 101, [Budget("big", tuple(range(101)), 0.005)]) > 0.99


def test_older_weights_without_a_discount_score_by_the_maximum(tmp_path: Path) -> None:
    (tmp_path / "encoder.json").write_text(json.dumps({"metadata": {"threshold": 0.9}}), encoding="utf-8")
    classifier = InjectionClassifier(tmp_path)
    assert classifier.threshold == 0.9
    assert classifier.window_discount == 0.0
