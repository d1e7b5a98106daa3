"""Train the rule judge's head over cached frozen-backbone embeddings, measure it, pick thresholds.

    cosa-guard train rules [--data-dir ../shared/data] [--output cosa_guard/data/rule_judge]

Steps: build the corpus (`corpus`), embed it once (`embed`, cached under --cache-dir), train
`RuleHead` on the training split (multiple-instance: a pair's logit is the maximum over its
answer's windows, as at serving time), then, with `--trainable-layers`, fine-tune the answer
tower's top layers jointly with that head (`tower`), score the held-out split (subjects and template families
training never saw) with the float16-rounded head that ships, pick the thresholds there
(`forbids`: the lowest score whose false-positive rate on held-out negatives is at most
`--max-fpr`, since a 5-rule config multiplies it, raised to the real-config cap; `allows`: best
F1), then choose `forbids` (from there up) and `weak_other` on the full decision over held-out
5-rule configs (`calibrate`), and write the head with a JSON of data, command, thresholds and
held-out figures.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cosa_guard.encoder import load_backbone
from cosa_guard.judges.rule_model import RuleHead, RuleScorer, ScorerConfig, TextEmbedder, answer_tower
from cosa_guard_training.rule_judge.corpus import (
    TRAIN,
    VAL,
    Answer,
    Inventory,
    Pair,
    build_answers,
    build_pairs,
)
from cosa_guard_training.rule_judge.embed import Embedded, embed_corpus, near_duplicates
from cosa_guard_training.rule_judge.templates import VAL_FAMILIES
from cosa_guard_training.rule_judge.tower import TowerSettings, fine_tune, lower_states, with_windows


@dataclass(frozen=True)
class HeadSettings:
    epochs: int = 8  # held-out AUC peaked here; 30 epochs overfit the training subjects
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_fpr: float = 0.04  # forbids threshold: at most this share of held-out negative pairs match
    seed: int = 0
    time_budget_s: float = 20 * 60


@dataclass
class PairTensors:
    """Pairs flattened to (rule, window, request) rows; `owner[i]` is the pair row `i` belongs to."""

    rules: torch.Tensor
    windows: torch.Tensor
    requests: torch.Tensor
    owner: torch.Tensor
    starts: list[int]  # per pair, its first row
    labels: torch.Tensor


def pair_tensors(pairs: Sequence[Pair], emb: Embedded) -> PairTensors:
    rule_rows: list[int] = []
    window_rows: list[int] = []
    request_rows: list[int] = []
    owner: list[int] = []
    starts: list[int] = []
    rule_index = {t: i for i, t in enumerate(emb.rules)}
    rule_matrix = torch.stack(list(emb.rules.values()))
    answer_ids = sorted(emb.requests)
    answer_index = {a: i for i, a in enumerate(answer_ids)}
    request_matrix = torch.stack([emb.requests[a] for a in answer_ids])
    for i, pair in enumerate(pairs):
        start, end = emb.spans[pair.answer]
        starts.append(len(owner))
        for row in range(start, end):
            rule_rows.append(rule_index[pair.rule])
            window_rows.append(row)
            request_rows.append(answer_index[pair.answer])
            owner.append(i)
    return PairTensors(
        rule_matrix[rule_rows],
        emb.windows[window_rows],
        request_matrix[request_rows],
        torch.tensor(owner),
        starts,
        torch.tensor([float(p.label) for p in pairs]),
    )


def pair_logits(
    head: RuleHead, t: PairTensors, rows: torch.Tensor, owner: torch.Tensor, n: int
) -> torch.Tensor:
    """Per pair, the maximum logit over its rows (`owner` renumbered 0..n-1 within the batch)."""
    logits = head(t.rules[rows], t.windows[rows], t.requests[rows])
    out = torch.full((n,), -1e9, dtype=logits.dtype)
    return out.scatter_reduce(0, owner, logits, reduce="amax")


def _rows_of(t: PairTensors, batch: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    total = t.owner.shape[0]
    rows: list[int] = []
    owner: list[int] = []
    for local, i in enumerate(batch):
        end = t.starts[i + 1] if i + 1 < len(t.starts) else total
        rows.extend(range(t.starts[i], end))
        owner.extend([local] * (end - t.starts[i]))
    return torch.tensor(rows), torch.tensor(owner)


def fit_head(
    config: ScorerConfig, t: PairTensors, settings: HeadSettings, *, progress: bool = True
) -> RuleHead:
    torch.manual_seed(settings.seed)
    head = RuleHead(config)
    optimiser = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    positives = float(t.labels.sum())
    pos_weight = torch.tensor((len(t.labels) - positives) / max(positives, 1.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    rng = random.Random(settings.seed)
    order = list(range(len(t.starts)))
    started = time.monotonic()
    for epoch in range(settings.epochs):
        head.train(True)
        rng.shuffle(order)
        total = 0.0
        for b in range(0, len(order), settings.batch_size):
            batch = order[b : b + settings.batch_size]
            rows, owner = _rows_of(t, batch)
            logits = pair_logits(head, t, rows, owner, len(batch))
            loss = loss_fn(logits, t.labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        if progress:
            print(f"epoch {epoch + 1}: loss {total / len(order):.4f}", file=sys.stderr, flush=True)
        if time.monotonic() - started > settings.time_budget_s:
            break
    head.train(False)
    with torch.no_grad():  # score with exactly what ships
        for param in head.parameters():
            param.copy_(param.to(torch.float16).to(torch.float32))
    return head


def predict(head: RuleHead, t: PairTensors, batch_size: int = 1024) -> list[float]:
    out: list[float] = []
    with torch.inference_mode():
        for b in range(0, len(t.starts), batch_size):
            batch = list(range(b, min(b + batch_size, len(t.starts))))
            rows, owner = _rows_of(t, batch)
            out += torch.sigmoid(pair_logits(head, t, rows, owner, len(batch))).tolist()
    return out


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (the probability a positive outscores a negative; ties count half)."""
    ranked = sorted(zip(scores, labels, strict=True))
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(y for _, y in ranked[i:j])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def rates(scores: Sequence[float], labels: Sequence[int], threshold: float) -> dict[str, float]:
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and y)
    fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and not y)
    fn = sum(1 for s, y in zip(scores, labels, strict=True) if s < threshold and y)
    negatives = len(labels) - sum(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fp / negatives if negatives else 0.0}


GRID = [round(0.02 * i, 2) for i in range(1, 50)]


def pick_thresholds(scores: Sequence[float], labels: Sequence[int], max_fpr: float) -> dict[str, float]:
    """`forbids`: the lowest grid threshold with FPR <= max_fpr; `allows`: the best-F1 one."""
    forbids = next((t for t in GRID if rates(scores, labels, t)["fpr"] <= max_fpr), GRID[-1])
    allows = max(GRID, key=lambda t: (rates(scores, labels, t)["f1"], -t))
    return {"forbids": forbids, "allows": allows}


def report(
    scores: Sequence[float], pairs: Sequence[Pair], answers: dict[str, Answer], thresholds: dict[str, float]
) -> dict[str, Any]:
    """Held-out figures: overall at both thresholds, and the slices that matter for rules."""
    labels = [p.label for p in pairs]
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "positives": sum(labels),
        "auc": round(auc(scores, labels), 4),
    }
    for name, t in thresholds.items():
        out[name] = {k: round(v, 4) for k, v in rates(scores, labels, t).items()}
    t = thresholds["forbids"]
    slices = {
        "hard_negative_fpr": [s for s, p in zip(scores, pairs, strict=True) if p.hard],
        "refusal_fpr": [s for s, p in zip(scores, pairs, strict=True) if answers[p.answer].kind == "refusal"],
        "benign_fpr": [s for s, p in zip(scores, pairs, strict=True) if answers[p.answer].kind == "benign"],
    }
    for name, values in slices.items():
        out[name] = round(sum(1 for s in values if s >= t) / len(values), 4) if values else None
    partial = [
        s for s, p in zip(scores, pairs, strict=True) if p.label and answers[p.answer].kind == "partial"
    ]
    out["partial_recall"] = round(sum(1 for s in partial if s >= t) / len(partial), 4) if partial else None
    return out


OBJECTIVE = (
    "forbids: lowest score with <= {max_fpr} of held-out negative pairs matched, raised until <= 10% of "
    "the 25 CoSApien demonstration answers match a forbidding rule of their config "
    "(held_out.real_config_cap), then with weak_other and cover_floor the best balanced accuracy of the "
    "full decision on held-out 5-rule configs (held_out.decision_calibration); "
    "allows: best F1 on held-out pairs"
)


def calibrate_thresholds(
    scorer: RuleScorer,
    data_dir: Path | None,
    inv: Inventory,
    answers: Sequence[Answer],
    thresholds: dict[str, float],
    scores: Sequence[float],
    labels: Sequence[int],
    held_out: dict[str, Any],
    seed: int,
) -> None:
    """From the pair thresholds: the real-config cap on `forbids`, then the decision calibration
    (`calibrate`); updates `thresholds` and records the figures in `held_out`."""
    from cosa_guard_training.rule_judge.calibrate import calibrate_decision, cap_forbids_on_demos

    if data_dir is not None and (data_dir / "cosa_configs").is_dir():
        thresholds["forbids"], held_out["real_config_cap"] = cap_forbids_on_demos(
            scorer, data_dir, thresholds["forbids"]
        )
        held_out["forbids_after_cap"] = {
            k: round(v, 4) for k, v in rates(scores, labels, thresholds["forbids"]).items()
        }
    chosen, held_out["decision_calibration"] = calibrate_decision(
        scorer, inv, [a for a in answers if a.split == VAL], thresholds, seed
    )
    thresholds.update(chosen)
    held_out["forbids_at_chosen"] = {
        k: round(v, 4) for k, v in rates(scores, labels, thresholds["forbids"]).items()
    }


def recalibrate(
    data_dir: Path, weights: Path, cache_dir: Path | None, *, max_fpr: float, seed: int
) -> dict[str, Any]:
    """Choose the thresholds of saved weights again (after a change to the calibration, without
    retraining): the held-out pairs are scored as serving scores them, then `calibrate_thresholds`;
    the metadata is rewritten with the new thresholds and figures."""
    torch.set_num_threads(1)
    scorer = RuleScorer.load(weights)
    inv, _ = build_answers(data_dir, seed)
    inv, answers = build_answers(data_dir, seed, near_duplicates(inv, scorer.embedder))
    val_pairs = [p for p in build_pairs(inv, answers, seed) if p.split == VAL]
    used = {p.answer for p in val_pairs}
    emb = embed_corpus(
        scorer.embedder,
        [a for a in answers if a.id in used],
        val_pairs,
        scorer.config,
        cache_dir,
        answer_embedder=scorer.answers if scorer.tower is not None else None,
    )
    scores = predict(scorer.head, pair_tensors(val_pairs, emb))
    labels = [p.label for p in val_pairs]
    thresholds = pick_thresholds(scores, labels, max_fpr)
    metadata = dict(scorer.config.metadata)
    held_out = dict(metadata.get("held_out", {}))
    calibrate_thresholds(scorer, data_dir, inv, answers, thresholds, scores, labels, held_out, seed)
    metadata.update(
        thresholds=thresholds, held_out=held_out, threshold_objective=OBJECTIVE.format(max_fpr=max_fpr)
    )
    scorer.save(weights, metadata)
    return metadata


def train_rule_judge(
    data_dir: Path | None,
    output: Path,
    *,
    cache_dir: Path | None,
    settings: HeadSettings = HeadSettings(),
    tower: TowerSettings | None = None,
    calibrate: bool = True,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Build, embed, train, measure, calibrate and save; returns the metadata written."""
    torch.set_num_threads(1)  # a shared 2-core box: one thread was as fast and left the other core free
    started = time.monotonic()
    config = ScorerConfig()
    embedder = TextEmbedder()
    inv, _ = build_answers(data_dir, settings.seed)
    inv, answers = build_answers(data_dir, settings.seed, near_duplicates(inv, embedder))
    pairs = build_pairs(inv, answers, settings.seed)
    emb = embed_corpus(embedder, answers, pairs, config, cache_dir, progress=progress)
    train_pairs = [p for p in pairs if p.split == TRAIN]
    val_pairs = [p for p in pairs if p.split == VAL]
    head = fit_head(config, pair_tensors(train_pairs, emb), settings, progress=progress)
    labels = [p.label for p in val_pairs]
    scorer = RuleScorer(embedder, head, config)
    tuning: dict[str, Any] = {}
    if tower is not None and tower.trainable_layers:
        scorer, emb, tuning = tune_tower(
            embedder, head, config, answers, emb, train_pairs, val_pairs, tower, cache_dir, progress=progress
        )
    scores = predict(scorer.head, pair_tensors(val_pairs, emb))
    thresholds = pick_thresholds(scores, labels, settings.max_fpr)
    by_id = {a.id: a for a in answers}
    held_out = report(scores, val_pairs, by_id, thresholds)
    held_out.update(tuning)
    if calibrate:
        calibrate_thresholds(
            scorer, data_dir, inv, answers, thresholds, scores, labels, held_out, settings.seed
        )
    metadata = {
        "thresholds": thresholds,
        "threshold_objective": OBJECTIVE.format(max_fpr=settings.max_fpr),
        "held_out": held_out,
        "data": {
            "answers": len(answers),
            "train_pairs": len(train_pairs),
            "val_pairs": len(val_pairs),
            "sources": sorted({a.id.split(":")[0].split("-")[0] for a in answers}),
            "held_out": "whole subjects (20% by hash) and template families "
            + ", ".join(sorted(VAL_FAMILIES)),
        },
        "training": {
            **asdict(settings),
            "tower": asdict(tower) if tower is not None else None,
            "torch": torch.__version__,
            "seconds": round(time.monotonic() - started, 1),
        },
        "command": command,
    }
    scorer.save(output, metadata)
    return metadata


def tune_tower(
    embedder: TextEmbedder,
    head: RuleHead,
    config: ScorerConfig,
    answers: Sequence[Answer],
    emb: Embedded,
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair],
    settings: TowerSettings,
    cache_dir: Path | None,
    *,
    progress: bool = True,
) -> tuple[RuleScorer, Embedded, dict[str, Any]]:
    """Fine-tune the answer tower from the frozen-backbone `head`; the scorer that ships (int8
    tower), the held-out answers re-embedded by it (as serving embeds them), and the held-out AUC
    before (the frozen head) and per epoch."""
    k = settings.trainable_layers
    labels = [p.label for p in val_pairs]
    used = {p.answer for p in (*train_pairs, *val_pairs)}
    lower = lower_states(
        embedder, [a for a in answers if a.id in used], config, k, cache_dir, progress=progress
    )
    val_ids = sorted({p.answer for p in val_pairs})

    def held_out_auc(top: Any, tuned: RuleHead) -> float:
        return auc(predict(tuned, pair_tensors(val_pairs, with_windows(emb, top, lower, val_ids))), labels)

    frozen_auc = auc(predict(head, pair_tensors(val_pairs, emb)), labels)
    base = load_backbone()
    top, tuned, ratings = fine_tune(
        base, head, lower, emb, train_pairs, settings, held_out_auc, progress=progress
    )
    state = top.state()
    config = replace(config, trainable_layers=k)
    scorer = RuleScorer(embedder, tuned, config, TextEmbedder(answer_tower(base, state, k)), state)
    val_answers = [a for a in answers if a.id in set(val_ids)]
    served = embed_corpus(
        embedder, val_answers, val_pairs, config, cache_dir, progress=progress, answer_embedder=scorer.answers
    )
    return (
        scorer,
        served,
        {"auc_frozen_backbone": round(frozen_auc, 4), "auc_by_tower_epoch": [round(r, 4) for r in ratings]},
    )
