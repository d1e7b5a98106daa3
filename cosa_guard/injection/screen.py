"""A linear screen over each token window: plainly benign windows skip the encoder.

The injection classifier reads a text in 128-token windows, and each window's forward pass costs
10-20 ms on one CPU core (machine-dependent), so a 500-token paste cost five of them and a
10,000-character one about thirty, although almost every window of real traffic is ordinary text.
The screen scores a window from its hashed token unigrams and bigrams with a logistic-regression
weight vector (a dot product: microseconds), and only windows at or over its threshold go to the
encoder. The threshold is fit at training time (`cosa-guard train injection`) so that 99.5 % of
the calibration attacks the encoder flags still reach it, and the classifier's own threshold is
then calibrated on what this two-stage path scores, so serving and calibration compute the same
thing.

The features are the encoder tokenizer's ids, so the screen sees exactly the windows the encoder
would, and needs nothing beyond numpy and safetensors (both come with the `embed` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosa_guard._optional import require

SCREEN_FILE = "screen.safetensors"
_BIGRAM = np.uint64(1_000_003)  # a prime that spreads (left, right) id pairs over the buckets
_BIGRAM_SALT = np.uint64(7_919)  # keeps a bigram off the bucket of the unigram it would equal


def window_features(ids: Sequence[int], buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """One window's hashed unigram and bigram buckets and their weights (log counts, unit length)."""
    tokens = np.asarray(ids, dtype=np.uint64)
    size = np.uint64(buckets)
    hashed = tokens % size
    if len(tokens) > 1:
        bigrams = (tokens[:-1] * _BIGRAM + tokens[1:] + _BIGRAM_SALT) % size
        hashed = np.concatenate([hashed, bigrams])
    index, counts = np.unique(hashed, return_counts=True)
    values = np.log1p(counts.astype(np.float32))
    norm = float(np.linalg.norm(values))
    return index.astype(np.int64), values / norm if norm else values


@dataclass(frozen=True)
class WindowScreen:
    """`weight` per hashed feature, `bias`, and `threshold` on the decision value (a logit)."""

    weight: np.ndarray
    bias: float
    threshold: float

    def score(self, ids: Sequence[int]) -> float:
        """The window's decision value; an empty window (no content tokens) scores the bias."""
        if not ids:
            return self.bias
        index, values = window_features(ids, len(self.weight))
        return float(values @ self.weight[index]) + self.bias

    def escalate(self, windows: Sequence[Sequence[int]]) -> list[bool]:
        """Which windows the encoder must read (score at or over the threshold)."""
        return [self.score(ids) >= self.threshold for ids in windows]

    def save(self, directory: str | Path) -> Path:
        """Write the screen as float16 weights beside the classifier's (what the package ships)."""
        st = require("safetensors.numpy", "embed", "the injection screen")
        path = Path(directory) / SCREEN_FILE
        st.save_file(
            {
                "weight": self.weight.astype(np.float16),
                "bias": np.array([self.bias], dtype=np.float64),
                "threshold": np.array([self.threshold], dtype=np.float64),
            },
            str(path),
        )
        return path

    @classmethod
    def load(cls, directory: str | Path) -> WindowScreen | None:
        """The screen shipped in `directory`, or None when it has none (every window is read)."""
        path = Path(directory) / SCREEN_FILE
        if not path.is_file():
            return None
        st = require("safetensors.numpy", "embed", "the injection screen")
        tensors = st.load_file(str(path))
        return cls(
            tensors["weight"].astype(np.float32),
            float(tensors["bias"][0]),
            float(tensors["threshold"][0]),
        )

    def rounded(self) -> WindowScreen:
        """This screen as `save` ships it (weights rounded to float16), for calibrating what serves."""
        return WindowScreen(self.weight.astype(np.float16).astype(np.float32), self.bias, self.threshold)
