"""Train the config-injection classifier and write the weights the package ships.

    cosa-guard train injection --data-dir ../shared/data       # writes cosa_guard/data/injection/

Steps: build the corpus (`injection_corpus.build_corpus`, plus the public sets when `--data-dir` has them)
and the real-traffic rows (`injection_real.py`: real benign turns, documents and long turns built from them,
attacks planted in them), fine-tune the top layers of the shared MiniLM encoder and a linear head
on the *normalised* detection text of each training row, then score the calibration rows (the
generated family-held-out validation split and the real calibration part) through the shipped
inference path (fp16 round trip, int8 on the engine serving picks, windows) and fit the window
discount and the threshold under false-positive budgets for the whole detector (decisive
structural findings OR classifier score >= threshold; `injection_calibration.py`). The delta
weights, threshold, discount, engine, input digests and calibration metrics go into `--out`.
Single-threaded with fixed seeds, so the same inputs and versions rebuild the same bytes. The
real validation split is read only by the benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cosa_guard.injection.classifier import WEIGHTS_DIR, window_score
from cosa_guard.injection.structural import DECISIVE, scan
from cosa_guard.normalise import normalise
from cosa_guard_training.detectors import injection_corpus as corpus_mod
from cosa_guard_training.detectors import injection_real as real
from cosa_guard_training.detectors import injection_screen as screen_mod
from cosa_guard_training.detectors.injection_calibration import Budget, fit_window_rule
from cosa_guard_training.detectors.real_traffic import length_bucket, stable_fraction

LABELS = ("attack",)
# What --recalibrate redoes; `engine` records which encoder engine the scores came from.
CALIBRATED = frozenset({"threshold", "window_discount", "screen_recall", "engine"})


def detection_texts(rows: Sequence[corpus_mod.Row]) -> list[str]:
    return detection_texts_of([r.text for r in rows])


def detection_texts_of(texts: Sequence[str]) -> list[str]:
    return [normalise(t).detection_text() for t in texts]


def structural_flags(rows: Sequence[corpus_mod.Row]) -> list[bool]:
    return [any(f.score >= DECISIVE for f in scan(r.text)) for r in rows]


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches in a shuffled order: padding stays short, order stays seeded."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    pool = batch_size * 16
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _frozen_states(model: Any, encoded: Sequence[list[int]], frozen: int, batch_size: int) -> list[Any]:
    """Each text's hidden states after the frozen layers, computed once (they never change).

    Training then runs only the unfrozen top layers: on a shared 2-core box this is what makes a
    few epochs fit in minutes.
    """
    import torch

    states: list[Any] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask = _pad([encoded[i] for i in batch])
            hidden = model.backbone(
                input_ids=ids, attention_mask=mask, output_hidden_states=True
            ).hidden_states
            for row, i in enumerate(batch):
                states[i] = hidden[frozen][row, : len(encoded[i])].clone()
    return states


def _pad(sequences: Sequence[list[int]]) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def _top_logits(model: Any, states: Sequence[Any], frozen: int) -> Any:
    """The classifier's logits from cached frozen-layer states: top layers, mean pool, head."""
    import torch

    from cosa_guard.encoder import mean_pool

    width = max(s.shape[0] for s in states)
    hidden = torch.zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, s in enumerate(states):
        hidden[row, : s.shape[0]] = s
        mask[row, : s.shape[0]] = 1
    # BERT's additive mask, as the backbone builds it (checked equal to a full forward pass).
    extended = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in model.backbone.encoder.layer[frozen:]:
        hidden = layer(hidden, attention_mask=extended)
    return model.head(model.dropout(mean_pool(hidden, mask)))


def fine_tune(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    seed: int = 0,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 1e-4,
    head_lr: float = 1e-3,
    trainable_layers: int = 3,
    max_length: int = 128,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    backbone: Any = None,
    init: str | Path | None = None,
    layers: int | None = None,
    teacher: Any = None,
    teacher_logits: Sequence[float] | None = None,
    hard_weight: float = 0.5,
) -> Any:
    """Fine-tune an `EncoderClassifier` (returned, in eval mode, rounded to what `save` ships).

    Each text is truncated to its first `max_length` tokens for training; inference reads every
    window. `backbone` replaces the installed MiniLM (tests pass a tiny random one). `init` continues
    from saved weights (same trainable layers) instead of the base model. `layers` keeps only the
    backbone's bottom layers (a student); `teacher` (a loaded classifier) then gives the student's
    trainable layers and head their starting weights (`inherit`), and `teacher_logits` (one per
    text) mix a distillation term into the loss with weight `1 - hard_weight` (`distil_loss`).
    """
    import torch
    from tqdm import tqdm

    from cosa_guard.encoder import EncoderClassifier, EncoderConfig, load_tokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    config = EncoderConfig(
        labels=LABELS,
        trainable_layers=trainable_layers,
        max_length=max_length,
        layers=layers,
        metadata=metadata or {},
    )
    model: Any = EncoderClassifier(config, backbone=backbone)
    if init is not None:
        model.load_state_dict(EncoderClassifier.load(init).trainable_state(), strict=False)
    if teacher is not None:
        inherit(model, teacher)
    if teacher_logits is not None and len(teacher_logits) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(teacher_logits)} teacher logits")
    frozen = len(model.backbone.encoder.layer) - trainable_layers
    encoded = load_tokenizer()(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    model.train(False)
    states = _frozen_states(model, encoded, frozen, batch_size * 2)
    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    optimiser = torch.optim.AdamW(
        [{"params": body, "lr": lr}, {"params": head, "lr": head_lr}], weight_decay=0.01
    )
    steps = epochs * math.ceil(len(texts) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, 1 - s / steps)
    )
    positives = sum(labels)
    pos_weight = torch.tensor([(len(labels) - positives) / max(1, positives)])
    model.train(True)
    bar = tqdm(total=steps, desc="fine-tuning", disable=not progress)
    for _ in range(epochs):
        for batch in _batches(lengths, batch_size, rng):
            target = torch.tensor([[float(labels[i])] for i in batch])
            logits = _top_logits(model, [states[i] for i in batch], frozen)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
            if teacher_logits is not None:
                soft = distil_loss(logits, torch.tensor([[teacher_logits[i]] for i in batch]))
                loss = hard_weight * loss + (1 - hard_weight) * soft
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(body + head, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.train(False)
    model.round_trip()
    return model


DISTIL_TEMPERATURE = 2.0


def distil_loss(logits: Any, teacher_logits: Any, temperature: float = DISTIL_TEMPERATURE) -> Any:
    """Binary cross-entropy against the teacher's probabilities, both softened by `temperature`
    (scaled by its square so the gradient keeps its size). Softening keeps the ranking among the
    teacher's confident scores, which is where the calibrated threshold (~0.94) sits."""
    import torch

    target = torch.sigmoid(teacher_logits / temperature)
    soft = torch.nn.functional.binary_cross_entropy_with_logits(logits / temperature, target)
    return soft * temperature**2


def inherit(student: Any, teacher: Any) -> None:
    """Start the student's trainable layers as the teacher's top layers (in order) and its head as
    the teacher's: with a 3-layer student training 2, the base's layer 0 then the teacher's
    fine-tuned layers 4 and 5, which already map to the head the teacher learnt."""
    trainable = student.config.trainable_layers
    if trainable > teacher.config.trainable_layers:
        raise ValueError(
            f"the student trains {trainable} layers but the teacher fine-tuned only "
            f"{teacher.config.trainable_layers}"
        )
    mine, theirs = student.backbone.encoder.layer, teacher.backbone.encoder.layer
    for target, source in zip(mine[len(mine) - trainable :], theirs[len(theirs) - trainable :], strict=True):
        target.load_state_dict(source.state_dict())
    student.head.load_state_dict(teacher.head.state_dict())


def _logits(model: Any, encoded: Sequence[list[int]], batch_size: int) -> list[float]:
    """The model's logit (first label) for each token sequence, in length-sorted batches."""
    import torch

    out = [0.0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for i, logit in zip(batch, model(*_pad([encoded[i] for i in batch]))[:, 0].tolist(), strict=True):
                out[i] = logit
    return out


def _cached(cache: str | Path | None, key: str, compute: Any) -> Any:
    """`compute()`, kept as JSON in `cache` under `key` (recomputed when the key differs)."""
    if cache is None:
        return compute()
    path = Path(cache)
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") == key and "value" in stored:
            return stored["value"]
    value = compute()
    path.write_text(json.dumps({"key": key, "value": value}), encoding="utf-8")
    return value


def teacher_logits(
    teacher_dir: str | Path, texts: Sequence[str], max_length: int, cache: str | Path | None = None
) -> list[float]:
    """The teacher's fp32 logit for the first `max_length` tokens of each text (what the student
    trains on), cached under the digest of the teacher's weights and the texts."""
    from cosa_guard.encoder import DELTA_FILE, EncoderClassifier, load_tokenizer

    def compute() -> list[float]:
        encoded = load_tokenizer()(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return _logits(EncoderClassifier.load(teacher_dir), encoded, 64)

    weights = hashlib.sha256((Path(teacher_dir) / DELTA_FILE).read_bytes()).hexdigest()
    key = hashlib.sha256(f"{weights}:{max_length}:".encode() + "\x00".join(texts).encode()).hexdigest()
    return [float(x) for x in _cached(cache, key, compute)]


def screened_windows(texts: Sequence[str], weights: str | Path) -> list[str]:
    """The windows of `texts` that the window screen in `weights` passes to the encoder, as text:
    the benign windows a student reads in serving, which the encoder's capped real cells hold
    few of."""
    from cosa_guard.encoder import load_tokenizer
    from cosa_guard.injection.screen import WindowScreen

    screen = WindowScreen.load(weights)
    if screen is None:
        raise ValueError(f"{weights} has no window screen")
    config = json.loads((Path(weights) / "encoder.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer()
    windows = screen_mod.window_ids(detection_texts_of(texts), config["max_length"], config["stride"])
    return [
        str(tokenizer.decode(ids))
        for ws in windows
        for ids, read in zip(ws, screen.escalate(ws), strict=True)
        if read
    ]


def evaluate(
    rows: Sequence[corpus_mod.Row], scores: Sequence[float], flags: Sequence[bool], threshold: float
) -> dict[str, Any]:
    """Recall, FPR and per-kind rates of the combined verdict at `threshold`."""
    predicted = [f or s >= threshold for s, f in zip(scores, flags, strict=True)]
    attacks = [p for p, r in zip(predicted, rows, strict=True) if r.label == corpus_mod.ATTACK]
    benign = [p for p, r in zip(predicted, rows, strict=True) if r.label != corpus_mod.ATTACK]
    kinds: dict[str, list[bool]] = {}
    for p, r in zip(predicted, rows, strict=True):
        kinds.setdefault(f"{r.label}:{r.kind}", []).append(p)
    return {
        "threshold": threshold,
        "recall": sum(attacks) / max(1, len(attacks)),
        "fpr": sum(benign) / max(1, len(benign)),
        "attacks": len(attacks),
        "benign": len(benign),
        "per_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(kinds.items())},
    }


def budgets(
    rows: Sequence[corpus_mod.Row],
    target_fpr: float,
    real_fpr: float,
    cell_fpr: float,
    length_fpr: float | None = None,
) -> list[Budget]:
    """The false-positive budgets the threshold must keep: generated hard negatives, real traffic
    overall, each of its length buckets (`length_fpr`, by default the overall `real_fpr`) and each
    language group of real traffic (`cell_fpr`)."""
    members: dict[str, list[int]] = {}
    limits: dict[str, float] = {}
    for i, row in enumerate(rows):
        if row.label == corpus_mod.ATTACK:
            continue
        if not row.kind.startswith(real.KIND_PREFIX):
            names = {"synthetic": target_fpr}
        else:
            # A long text may be no likelier to be flagged than traffic overall: the length buckets
            # get the overall budget, the language groups the looser per-cell one.
            names = {
                "real": real_fpr,
                f"real_{real.group_of(row)}": cell_fpr,
                f"real_len_{length_bucket(row.text)}": real_fpr if length_fpr is None else length_fpr,
            }
        for name, fpr in names.items():
            members.setdefault(name, []).append(i)
            limits[name] = fpr
    return [Budget(name, tuple(members[name]), limits[name]) for name in sorted(members)]


def _window_probabilities(
    texts: Sequence[str], out: str | Path, cache: str | Path | None
) -> tuple[str, list[list[float]]]:
    """The engine the serving path picks for `out`, and each text's read windows' probabilities."""
    from cosa_guard.encoder import DELTA_FILE
    from cosa_guard.injection.classifier import InjectionClassifier
    from cosa_guard.injection.screen import SCREEN_FILE

    classifier = InjectionClassifier(out, threads=1)

    def score() -> list[list[float]]:
        # The serving path exactly: what `InjectionClassifier.predict` aggregates (screen, int8 on
        # the engine serving picks, each window the encoder reads in its own forward pass), from
        # the files in `out`.
        return classifier.window_probabilities(texts)

    screen = Path(out) / SCREEN_FILE
    weights = (Path(out) / DELTA_FILE).read_bytes() + (screen.read_bytes() if screen.is_file() else b"")
    # The engine is part of the key: torch and ONNX Runtime scores differ near the boundary.
    engine = classifier.engine()
    key = weights + engine.encode() + "\x00".join(texts).encode()
    return engine, _cached(cache, hashlib.sha256(key).hexdigest(), score)


def calibrate_and_save(
    model: Any,
    rows: Sequence[corpus_mod.Row],
    metadata: dict[str, Any],
    targets: tuple[float, float, float, float | None],
    out: str | Path,
    cache: str | Path | None = None,
    *,
    screen: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the calibration rows through the serving path, fit the threshold and window discount
    under `targets` (generated, real overall and per length bucket, real per language group),
    write everything.

    `rows` are the generated family-held-out validation split and the real calibration part. The
    model is written to `out` first and scored from there, with the window screen already in
    `out` (if any), as the package serves it. `cache` keeps their window probabilities (keyed by
    the weights in `out` and the texts), so a re-calibration with other budgets does not score
    them again.
    """
    model.save(out)
    texts = detection_texts(rows)
    engine, probs = _window_probabilities(texts, out, cache)
    flags = structural_flags(rows)
    labels = [int(r.label == corpus_mod.ATTACK) for r in rows]
    rule, candidates = fit_window_rule(probs, labels, flags, budgets(rows, *targets))
    scores = [window_score(p, rule.discount) for p in probs]

    def evaluate_on(is_real: bool) -> dict[str, Any]:
        keep = [i for i, r in enumerate(rows) if r.kind.startswith(real.KIND_PREFIX) == is_real]
        picked = ([rows[i] for i in keep], [scores[i] for i in keep], [flags[i] for i in keep])
        return evaluate(*picked, rule.threshold)

    metrics = {
        **evaluate_on(False),
        "target_fpr": targets[0],
        "window_discount": rule.discount,
        "engine": engine,
        "real_calibration": {
            "target_fpr": targets[1],
            "cell_target_fpr": targets[2],
            "length_target_fpr": targets[1] if targets[3] is None else targets[3],
            "fpr": {name: round(v, 4) for name, v in sorted(rule.fprs.items()) if name != "synthetic"},
            "per_kind": evaluate_on(True)["per_kind"],
        },
        "discounts": [
            {"discount": c.discount, "threshold": c.threshold, "recall": round(c.recall, 4),
             "worst_budget_use": round(c.worst_use, 3),
             "fpr": {k: round(v, 4) for k, v in sorted(c.fprs.items()) if k.startswith("real_len_")}}
            for c in candidates
        ],
        **({"screen": screen} if screen is not None else {}),
    }  # fmt: skip
    calibrated = {"threshold": rule.threshold, "window_discount": rule.discount, "engine": engine}
    model.config = replace(model.config, metadata={**metadata, **calibrated})
    directory = model.save(out)
    (directory / "metrics.json").write_text(
        json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return metrics


def screen_and_save(
    model: Any,
    train_rows: Sequence[corpus_mod.Row],
    benign: Sequence[str],
    calibration_rows: Sequence[corpus_mod.Row],
    recall: float,
    out: str | Path,
) -> dict[str, Any]:
    """Fit the window screen on the training rows plus more real `benign` text, set its threshold
    on the calibration rows so that `recall` of the attacks the rules leave and the encoder flags
    still reach the encoder, and write it to `out`. Returns what the metrics file records."""
    from cosa_guard.encoder import EncoderPredictor
    from cosa_guard.injection.classifier import InjectionClassifier
    from cosa_guard.injection.screen import WindowScreen

    def windows(texts: Sequence[str]) -> list[list[list[int]]]:
        return screen_mod.window_ids(texts, model.config.max_length, model.config.stride)

    def labels(rows: Sequence[corpus_mod.Row]) -> list[int]:
        return [int(r.label == corpus_mod.ATTACK) for r in rows]

    texts = detection_texts(train_rows) + detection_texts_of(benign)
    screen = screen_mod.fit_screen(windows(texts), labels(train_rows) + [0] * len(benign)).rounded()
    held_texts = detection_texts(calibration_rows)
    held = windows(held_texts)
    decided = structural_flags(calibration_rows)
    attacks = [i for i, r in enumerate(calibration_rows) if r.label == corpus_mod.ATTACK and not decided[i]]
    # Which windows the encoder finds attack-like, each text in one batch: a proxy at a loose 0.5,
    # so the int8 batch effect on a window's probability (a few hundredths) does not matter here.
    # On the engine serving picks, so the screen keeps the windows that engine finds attack-like.
    engine = InjectionClassifier(out).engine()
    predictor = EncoderPredictor(model, int8=True, engine=engine)
    encoder = predictor.predict_windows([held_texts[i] for i in attacks], threads=1)
    relevant = [[p[0] >= screen_mod.ENCODER_ATTACK for p in ps] for ps in encoder]
    threshold = screen_mod.screen_threshold(screen, [held[i] for i in attacks], relevant, recall)
    screen = WindowScreen(screen.weight, screen.bias, threshold)
    screen.save(out)
    read = [[screen.score(w) >= threshold for w in ws] for ws in held]

    def share_read(real_rows: bool) -> float:
        picked = [
            x
            for r, row_read in zip(calibration_rows, read, strict=True)
            if r.label != corpus_mod.ATTACK and r.kind.startswith(real.KIND_PREFIX) == real_rows
            for x in row_read
        ]
        return round(sum(picked) / max(1, len(picked)), 4)

    return {
        "threshold": threshold,
        "recall_target": recall,
        "attacks_counted": sum(any(r) for r in relevant),
        "benign_windows_read": {"generated": share_read(False), "real": share_read(True)},
    }


def plain_attacks(rows: Sequence[corpus_mod.Row], split: str) -> list[str]:
    """Generated attacks of one split, unencoded: the ones planted inside real long texts (an
    encoded payload's decoded view is appended at the end of the detection text, out of the window
    a training slice keeps)."""
    return [
        r.text
        for r in rows
        if r.label == corpus_mod.ATTACK and r.source == "generated"
        if r.encoding == "plain" and r.split == split
    ]


def kept(text: str, share: float) -> bool:
    """A seed-free, stable choice of `share` of the rows."""
    return share >= 1.0 or stable_fraction(f"generated-share:{text}") < share


def real_corpus(
    rows: Sequence[corpus_mod.Row],
    data_dir: str | Path,
    seed: int,
    roles: Sequence[real.Role],
    caps: real.Caps | None = None,
) -> dict[real.Role, list[corpus_mod.Row]]:
    """Real-traffic rows per role; attacks from training families go into training hosts only."""
    return real.real_rows(
        data_dir,
        seed,
        lambda role: plain_attacks(rows, "train" if role == "train" else "validation"),
        roles,
        caps,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cosa-guard train injection`."""
    parser.add_argument("--data-dir", default="../shared/data", help="public sets; skipped when absent")
    parser.add_argument("--out", default=str(WEIGHTS_DIR), help="where the weights go (default: the package)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--per-family", type=int, default=120, help="generated rows per attack template family"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--trainable-layers", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--target-fpr", type=float, default=0.02, help="on generated hard negatives")
    parser.add_argument("--real-target-fpr", type=float, default=0.01, help="on real calibration traffic")
    parser.add_argument("--cell-target-fpr", type=float, default=0.02, help="per language group of it")
    parser.add_argument(
        "--length-target-fpr",
        type=float,
        help="per length bucket of real calibration traffic (default: --real-target-fpr, so a long text "
        "is no likelier to be flagged than traffic overall)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps runs bit-for-bit)")
    parser.add_argument("--corpus-out", help="also write the training and calibration rows as JSONL here")
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="keep the weights in --out, only redo the threshold, discount and metrics",
    )
    parser.add_argument(
        "--init", help="continue from the weights in this directory (same trainable layers), not the base"
    )
    parser.add_argument(
        "--generated-share",
        type=float,
        default=1.0,
        help="train on this share of the generated training rows (with --init: they were learnt already)",
    )
    parser.add_argument(
        "--screen-recall",
        type=float,
        default=0.995,
        help="share of the calibration attacks (the rules do not block) that the window screen must "
        "pass to the encoder; the rest of its windows skip the encoder",
    )
    parser.add_argument("--scores-cache", help="keep the calibration rows' window probabilities in this file")
    parser.add_argument(
        "--layers",
        type=int,
        help="keep only the bottom LAYERS of the backbone (a faster student)",
    )
    parser.add_argument(
        "--distil-from",
        help="a teacher's weights directory: the student starts from its top layers and head and learns "
        "its logits too (on the training rows and the real benign windows its screen passes)",
    )
    parser.add_argument(
        "--hard-weight", type=float, default=0.5, help="with --distil-from: the weight of the labels' loss"
    )
    parser.add_argument("--teacher-cache", help="with --distil-from: keep the teacher's logits in this file")
    parser.add_argument("--no-progress", action="store_true")


def command_line(args: argparse.Namespace) -> str:
    """The options of this run that differ from the defaults, as one command (for the metadata)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    parts = ["cosa-guard train injection"]
    for name, value in vars(args).items():
        if name in defaults and value != defaults[name]:
            flag = "--" + name.replace("_", "-")
            parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """`cosa-guard train injection`: train (or only recalibrate), then calibrate and write metrics."""
    import torch
    import transformers

    from cosa_guard.encoder import EncoderClassifier

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    if args.recalibrate:
        model: Any = EncoderClassifier.load(args.out)
        metadata = {k: v for k, v in model.config.metadata.items() if k not in CALIBRATED}
        args.seed, args.per_family = metadata["seed"], metadata["per_family"]
        args.generated_share = metadata.get("generated_share", 1.0)
    public = corpus_mod.public_rows(args.data_dir)
    rows = corpus_mod.build_corpus(args.seed, args.per_family, public)
    reals = real_corpus(rows, args.data_dir, args.seed, ("train", "calibration"))
    generated = [r for r in rows if r.split == "train" and kept(r.text, args.generated_share)]
    train_rows = generated + reals["train"]
    calibration_rows = [r for r in rows if r.split == "validation"] + reals["calibration"]
    if args.corpus_out:
        corpus_mod.write_jsonl([*train_rows, *calibration_rows], args.corpus_out)
    print(
        f"corpus: {len(rows)} generated/public rows ({len(public)} public), {len(reals['train'])} + "
        f"{len(reals['calibration'])} real; train {len(train_rows)}, calibration {len(calibration_rows)}"
    )
    digests = {
        "corpus_sha256": corpus_mod.corpus_digest(rows),
        "real_sha256": corpus_mod.corpus_digest([*reals["train"], *reals["calibration"]]),
    }
    if args.recalibrate:
        if any(metadata.get(k) != v for k, v in digests.items()):
            print("warning: the corpus differs from the one these weights were trained on", file=sys.stderr)
    else:
        metadata = {
            "seed": args.seed,
            "per_family": args.per_family,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            **digests,
            "public_rows": len(public),
            "real_rows": len(reals["train"]),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": args.threads,
            "generated_share": args.generated_share,
        }
        if args.init:
            delta = (Path(args.init) / "delta.safetensors").read_bytes()
            metadata["init_delta_sha256"] = hashlib.sha256(delta).hexdigest()
        texts = detection_texts(train_rows)
        labels = [int(r.label == corpus_mod.ATTACK) for r in train_rows]
        teacher, logits = None, None
        if args.distil_from:
            # Real benign windows the teacher's screen passes: what the student reads in serving.
            windows = screened_windows(real.screen_negatives(args.data_dir, args.seed), args.distil_from)
            texts, labels = texts + windows, labels + [0] * len(windows)
            logits = teacher_logits(args.distil_from, texts, args.max_length, args.teacher_cache)
            teacher = EncoderClassifier.load(args.distil_from)
            delta = (Path(args.distil_from) / "delta.safetensors").read_bytes()
            metadata.update(
                distil_from_delta_sha256=hashlib.sha256(delta).hexdigest(),
                distil_windows=len(windows),
                hard_weight=args.hard_weight,
                distil_temperature=DISTIL_TEMPERATURE,
            )
            print(f"distilling: {len(windows)} screened real windows added, teacher logits ready")
        metadata["command"] = command_line(args)
        model = fine_tune(
            texts,
            labels,
            seed=args.seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            trainable_layers=args.trainable_layers,
            max_length=args.max_length,
            metadata=metadata,
            progress=not args.no_progress,
            init=args.init,
            layers=args.layers,
            teacher=teacher,
            teacher_logits=logits,
            hard_weight=args.hard_weight,
        )
        # Written before calibration, so a calibration that fails can be redone with --recalibrate.
        model.save(args.out)
        print(f"trained ({time.monotonic() - started:.0f} s)")
    # The screen learns from every generated training row (not only the share the encoder
    # continued on) and from far more real benign text than the encoder's capped cells.
    screen_rows = [r for r in rows if r.split == "train"] + reals["train"]
    benign = real.screen_negatives(args.data_dir, args.seed)
    screen = screen_and_save(model, screen_rows, benign, calibration_rows, args.screen_recall, args.out)
    print(f"window screen: {screen}")
    metadata["screen_recall"] = args.screen_recall
    targets = (args.target_fpr, args.real_target_fpr, args.cell_target_fpr, args.length_target_fpr)
    metrics = calibrate_and_save(
        model, calibration_rows, metadata, targets, args.out, args.scores_cache, screen=screen
    )
    real_fpr = metrics["real_calibration"]["fpr"].get("real", 0.0)
    print(
        f"threshold={metrics['threshold']:.4f} window_discount={metrics['window_discount']} "
        f"recall={metrics['recall']:.4f} fpr={metrics['fpr']:.4f} real_fpr={real_fpr:.4f} "
        f"({time.monotonic() - started:.0f} s) -> {args.out}"
    )
    return 0
