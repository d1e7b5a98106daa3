"""Fit the injection classifier's window screen (`cosa_guard/injection/screen.py`).

A logistic regression (scikit-learn, liblinear: deterministic) over each window's hashed token
unigrams and bigrams, trained on the same detection texts and windows the encoder trains on.
A long attack row holds its attack in one or two windows and benign host text in the rest, so
labelling every window of it an attack would teach the screen that ordinary prose is suspicious:
a first fit scores the windows of each such row and a second fit keeps only its most
attack-like window as the positive (multiple-instance learning in its simplest form).

The threshold is the decision value that `recall` of the calibration attacks reach: those the
rules do not already block and the encoder finds attack-like in some window (probability at
least `ENCODER_ATTACK`), judged by the screen's score on such a window. At most 1 - `recall` of
the attacks the encoder could catch are cleared before it reads them; attacks it would miss
anyway do not drag the threshold down. The encoder's threshold is calibrated afterwards on what
this two-stage path scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cosa_guard.injection.screen import WindowScreen, window_features

BUCKETS = 2**18  # 512 KB of float16 weights; 2**20 measured no better on the validation split
REGULARISATION = 4.0  # liblinear's C
ENCODER_ATTACK = 0.5  # a window the encoder scores this high is one the screen must not clear


def window_ids(texts: Sequence[str], max_length: int, stride: int) -> list[list[list[int]]]:
    """Per text, the content token ids of the windows the encoder reads (the serving windows)."""
    from cosa_guard.encoder import encode_windows, load_tokenizer

    tokenizer = load_tokenizer()
    return [encode_windows(tokenizer, [t], max_length, stride).content_ids() for t in texts]


def _matrix(windows: Sequence[Sequence[int]], buckets: int) -> object:
    from scipy.sparse import csr_matrix

    indptr, index, values = [0], [], []
    for ids in windows:
        i, v = window_features(ids, buckets)
        index.append(i)
        values.append(v)
        indptr.append(indptr[-1] + len(i))
    return csr_matrix(
        (np.concatenate(values), np.concatenate(index), np.asarray(indptr)), shape=(len(windows), buckets)
    )


def _fit(
    windows: Sequence[Sequence[int]], labels: Sequence[int], buckets: int, c: float
) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=c, solver="liblinear", class_weight="balanced", max_iter=3000, random_state=0
    )
    model.fit(_matrix(windows, buckets), list(labels))
    return np.asarray(model.coef_[0], dtype=np.float32), float(model.intercept_[0])


def fit_screen(
    texts_windows: Sequence[Sequence[Sequence[int]]],
    labels: Sequence[int],
    *,
    buckets: int = BUCKETS,
    c: float = REGULARISATION,
) -> WindowScreen:
    """The screen's weights (threshold not yet set: +inf, so nothing is cleared until calibrated)."""
    flat = [(w, y) for ws, y in zip(texts_windows, labels, strict=True) for w in ws]
    weight, bias = _fit([w for w, _ in flat], [y for _, y in flat], buckets, c)
    first = WindowScreen(weight, bias, math.inf)
    kept: list[Sequence[int]] = []
    kept_labels: list[int] = []
    for windows, label in zip(texts_windows, labels, strict=True):
        if label and len(windows) > 1:
            kept.append(max(windows, key=first.score))
            kept_labels.append(1)
        else:
            kept += windows
            kept_labels += [label] * len(windows)
    weight, bias = _fit(kept, kept_labels, buckets, c)
    return WindowScreen(weight, bias, math.inf)


def screen_threshold(
    screen: WindowScreen,
    texts_windows: Sequence[Sequence[Sequence[int]]],
    relevant: Sequence[Sequence[bool]],
    recall: float,
) -> float:
    """The highest threshold that lets `recall` of the attacks through to the encoder, each judged
    by its strongest `relevant` window (the windows the encoder flags; texts with none are not
    counted); -inf (read everything) when no text has one."""
    tops = sorted(
        max(screen.score(w) for w, keep in zip(windows, flags, strict=True) if keep)
        for windows, flags in zip(texts_windows, relevant, strict=True)
        if any(flags)
    )
    if not tops:
        return -math.inf
    cleared = math.floor((1 - recall) * len(tops))  # attacks allowed under the threshold
    return tops[cleared]
