"""Fitting the injection classifier's window screen (`detectors/injection_screen.py`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cosa_guard_training.detectors.injection_screen import fit_screen, screen_threshold

BUCKETS = 1024


def test_fit_learns_the_attack_window_and_the_threshold_keeps_the_recall() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)

    def benign() -> list[int]:
        return [int(x) for x in rng.integers(100, 200, size=12)]

    def attack() -> list[int]:
        return [1, 2, 3] + [int(x) for x in rng.integers(100, 200, size=6)]

    # Long attack rows hide their attack in one window of benign host text.
    rows = [[benign()] for _ in range(60)] + [[benign(), attack(), benign()] for _ in range(30)]
    labels = [0] * 60 + [1] * 30
    screen = fit_screen(rows, labels, buckets=BUCKETS, c=4.0)
    assert screen.threshold == math.inf
    assert screen.score(attack()) > max(screen.score(benign()) for _ in range(20))
    held = [[benign()] for _ in range(40)] + [[benign(), attack()] for _ in range(20)]
    # the encoder flags the attack window (the second) of each attack row
    relevant = [[False, True] for _ in range(20)]
    threshold = screen_threshold(screen, held[40:], relevant, recall=0.9)
    reached = [screen.score(ws[1]) >= threshold for ws in held[40:]]
    assert sum(reached) >= 18  # at most floor(0.1 * 20) attacks cleared
    cleared = [all(screen.score(w) < threshold for w in ws) for ws in held[:40]]
    assert np.mean(cleared) > 0.5  # and most benign rows skip the encoder
    # attacks the encoder would miss anyway do not set the threshold; none left: read everything
    assert screen_threshold(screen, held[40:], [[False, False]] * 20, recall=0.9) == -math.inf
    # each attack is judged by its relevant window only: on its benign host window it scores lower
    assert screen_threshold(screen, held[40:], [[True, False]] * 20, recall=1.0) < threshold
