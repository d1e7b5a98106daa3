"""Train the category judge: fine-tune the top MiniLM layers on (prompt, response) pairs.

    nice -n 10 cosa-guard train judge            # writes cosa_guard/data/category_judge/

Reads the corpus (`judge_corpus`: synthetic rows plus the public sets in
../shared/data) and the real-traffic exchanges (`judge_real`), trains a
multi-label head (one sigmoid per category, `other` included) with the top transformer layers on
the training split (from scratch, or from a trained judge with `--init`), then scores the
validation split (family-held-out corpus rows and held-out real exchanges) with the int8 inference
path the judge uses (each pair in its own forward pass, as `judge()` scores it) and picks, per
category, the threshold with the best F-beta, then raises thresholds until at most
`--max-benign-fpr` of each source's real benign answers get a category. Only the trained delta (head +
top layers, float16) and a JSON description holding the thresholds, validation figures and corpus
fingerprint are written: a few MB that ship in the package. Training stops early at
`--time-budget` minutes so it fits a shared CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosa_guard._optional import require
from cosa_guard.encoder import encode_windows
from cosa_guard.judges.category import PROMPT_TOKENS, WEIGHTS_DIR, CategoryJudge, clip_prompt
from cosa_guard.taxonomy import CATEGORY_IDS
from cosa_guard_training.detectors.judge_corpus import TRAIN, VAL, Example, build_corpus, default_data_dir
from cosa_guard_training.detectors.judge_real import BENIGN_KINDS, real_examples

_PURPOSE = "training the category judge"


@dataclass(frozen=True)
class TrainSettings:
    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 1e-4  # unfrozen transformer layers
    head_lr: float = 2e-3
    trainable_layers: int = 4
    max_length: int = 256
    stride: int = 32
    prompt_tokens: int = PROMPT_TOKENS
    beta: float = 1.3  # F-beta for threshold calibration; >1 favours catching violations (see docs)
    max_benign_fpr: float | None = 0.05  # then thresholds rise until real benign answers pass (docs)
    per_source_cap: bool = True  # the cap holds for each real benign source, not only pooled
    seed: int = 0
    time_budget_s: float = 45 * 60  # a cap for busy machines: a 2-core one ran every step in 25 min
    max_train: int | None = None  # subsample the training split (smoke runs)
    # Windows past the first of an answer with no category, trained as negatives (at most this many
    # per answer): the judge reads every window of a long answer, so a benign answer's later windows
    # must be taught to stay quiet, not only its first (see docs/judge.md, section 4).
    negative_windows: int = 8
    benign_weight: float = 1.0  # loss weight of real benign answers (`BENIGN_KINDS`) and their windows


def labels_matrix(rows: Sequence[Example]) -> list[list[float]]:
    return [[1.0 if c in row.categories else 0.0 for c in CATEGORY_IDS] for row in rows]


def fbeta(tp: int, fp: int, fn: int, beta: float = 1.0) -> float:
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / denom if denom else 0.0


def calibrate_thresholds(
    probs: Sequence[Sequence[float]], labels: Sequence[Sequence[float]], beta: float = 1.0
) -> dict[str, float]:
    """Per category, the threshold in 0.05..0.95 with the best F-beta (ties: the lower threshold)."""
    grid = [round(0.05 + 0.01 * i, 2) for i in range(91)]
    chosen = {}
    for j, cat in enumerate(CATEGORY_IDS):
        pairs = [(p[j], y[j] >= 0.5) for p, y in zip(probs, labels, strict=True)]
        best, best_t = -1.0, 0.5
        for t in grid:
            tp = sum(1 for p, y in pairs if p >= t and y)
            fp = sum(1 for p, y in pairs if p >= t and not y)
            fn = sum(1 for p, y in pairs if p < t and y)
            score = fbeta(tp, fp, fn, beta)
            if score > best:
                best, best_t = score, t
        chosen[cat] = best_t
    return chosen


def cap_false_positives(
    probs: Sequence[Sequence[float]],
    labels: Sequence[Sequence[float]],
    benign: Sequence[Sequence[int]],
    thresholds: dict[str, float],
    max_fpr: float,
) -> dict[str, float]:
    """Raise thresholds until at most `max_fpr` of each group of `benign` rows (indices) gets any
    category.

    Each step raises one category's threshold just past its lowest-scored benign row still over it
    in a group over the cap (0.01 grid), choosing the move that drops the most of those groups'
    benign flags per true positive lost over all rows, so recall is given up where it buys the most.
    Unchanged when `thresholds` already pass.
    """
    chosen = dict(thresholds)
    n = len(CATEGORY_IDS)

    def flagged(i: int) -> bool:
        return any(probs[i][j] >= chosen[c] for j, c in enumerate(CATEGORY_IDS))

    def over_cap() -> list[int]:
        return [i for group in benign if sum(map(flagged, group)) > max_fpr * len(group) for i in group]

    while rows := over_cap():
        best: tuple[tuple[float, int], int, float] | None = None  # ((drops per loss, -lost), j, new)
        for j in range(n):
            old = chosen[CATEGORY_IDS[j]]
            over = [probs[i][j] for i in rows if probs[i][j] >= old]
            if not over:
                continue
            new = min(1.0, math.floor(min(over) * 100 + 1e-9) / 100 + 0.01)
            dropped = sum(1 for p in over if p < new)
            lost = sum(1 for p, y in zip(probs, labels, strict=True) if y[j] >= 0.5 and old <= p[j] < new)
            if best is None or (dropped / (1 + lost), -lost) > best[0]:
                best = ((dropped / (1 + lost), -lost), j, new)
        if best is None:
            break
        chosen[CATEGORY_IDS[best[1]]] = round(best[2], 2)
    return chosen


def calibrate(
    probs: Sequence[Sequence[float]],
    rows: Sequence[Example],
    beta: float,
    max_benign_fpr: float | None,
    *,
    per_source: bool = False,
) -> dict[str, float]:
    """Per-category F-beta thresholds, then raised until real benign answers (`BENIGN_KINDS` rows)
    are flagged at most `max_benign_fpr` of the time (None: no cap): over all of them pooled, or,
    with `per_source`, within each source (a pooled rate averages easy sources such as GSM8K with
    hard ones such as PHTest's sensitive-sounding prompts, and hides the hard one)."""
    labels = labels_matrix(rows)
    thresholds = calibrate_thresholds(probs, labels, beta)
    if max_benign_fpr is None:
        return thresholds
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r.kind in BENIGN_KINDS:
            groups.setdefault(r.source if per_source else "", []).append(i)
    return cap_false_positives(probs, labels, list(groups.values()), thresholds, max_benign_fpr)


def judge_corpus(
    data_dir: Path | None, seed: int, *, public: bool = True, real: bool = True
) -> list[Example]:
    """The corpus (synthetic + public sets) plus, with `real`, the real-traffic exchanges."""
    rows = build_corpus(data_dir, seed, public=public)
    root = data_dir if data_dir is not None else default_data_dir()
    return rows + (real_examples(root) if real and root is not None else [])


def score_rows(judge: CategoryJudge, rows: Sequence[Example], *, progress: bool = False) -> list[list[float]]:
    """Per row, each category's probability (CATEGORY_IDS order), every pair scored alone as in serving."""
    tqdm = require("tqdm", "embed", _PURPOSE).tqdm
    probs: list[list[float]] = []
    chunk = 64
    for start in tqdm(range(0, len(rows), chunk), desc="scoring validation", disable=not progress):
        part = rows[start : start + chunk]
        scored = judge.score_each([r.prompt for r in part], [r.response for r in part])
        probs += [[row[c] for c in CATEGORY_IDS] for row in scored]
    return probs


def pair_key(row: Example) -> str:
    """A key for one (prompt, response) pair in a scores file."""
    return hashlib.sha256(json.dumps([row.prompt, row.response]).encode("utf-8")).hexdigest()[:24]


def weights_digest(directory: Path) -> str:
    from cosa_guard.encoder import DELTA_FILE

    return hashlib.sha256((directory / DELTA_FILE).read_bytes()).hexdigest()[:16]


def cached_scores(
    judge: CategoryJudge,
    rows: Sequence[Example],
    weights: Path,
    cache: Path | None,
    *,
    progress: bool = False,
) -> list[list[float]]:
    """`score_rows`, reusing the pairs already scored in the JSON file `cache` by the same weights
    (the delta in `weights`), and writing the new ones back.

    Scores depend on the weights alone, not on the thresholds: re-picking thresholds and re-running
    the benchmark on the same weights need not pay for scoring thousands of pairs again. The file
    knows the weights, not the scoring code: delete it when the encoder or the windowing changes.
    """
    digest = weights_digest(weights)
    stored: dict[str, list[float]] = {}
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("weights") == digest:
            stored = data["scores"]
    keys = [pair_key(r) for r in rows]
    missing: dict[str, Example] = {}
    for key, row in zip(keys, rows, strict=True):
        if key not in stored:
            missing.setdefault(key, row)
    stored.update(zip(missing, score_rows(judge, list(missing.values()), progress=progress), strict=True))
    if cache is not None and missing:
        cache.write_text(json.dumps({"weights": digest, "scores": stored}), encoding="utf-8")
    return [stored[k] for k in keys]


def training_windows(
    tokenizer: Any, rows: Sequence[Example], settings: TrainSettings
) -> tuple[list[list[int]], list[int]]:
    """Token ids of the windows training reads, and the row each came from.

    Windows are cut as `judge()` cuts them (the clipped request in front of every window of the
    response, `max_length` tokens, overlapping by `stride`). Every row keeps its first window; a row
    with no category also keeps up to `negative_windows` more: no part of an answer free of every
    category carries one, while a violating answer's harm may sit in any one window, so only its
    first window (the one training always read) is labelled with its categories.
    """
    prompts = clip_prompt(tokenizer, [r.prompt for r in rows], settings.prompt_tokens)
    windows = encode_windows(
        tokenizer, prompts, settings.max_length, settings.stride, pairs=[r.response for r in rows]
    )
    ids: list[list[int]] = []
    owners: list[int] = []
    seen: dict[int, int] = {}
    for window, owner in zip(windows.token_ids(), windows.owner, strict=True):
        index = seen.get(owner, 0)
        seen[owner] = index + 1
        if index == 0 or (not rows[owner].categories and index <= settings.negative_windows):
            ids.append(window)
            owners.append(owner)
    return ids, owners


def corpus_fingerprint(rows: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row.prompt, row.response, row.categories, row.split]).encode("utf-8"))
    return digest.hexdigest()[:16]


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of similar length, so little compute goes to padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _SplitForward:
    """The classifier's forward in two parts: frozen bottom layers (run once) and the trained top.

    The frozen part's output never changes during training, so it is computed once per example
    (through the int8 model the judge runs at inference) and cached; each epoch then pays only for
    the top layers. `check` proves the split forward equals the model's own forward.
    """

    def __init__(self, model: Any) -> None:
        from cosa_guard.encoder import mean_pool

        self.torch = require("torch", "embed", _PURPOSE)
        self.mean_pool = mean_pool
        self.masking = require("transformers.masking_utils", "embed", _PURPOSE)
        self.model = model
        layers = model.backbone.encoder.layer
        self.cut = len(layers) - model.config.trainable_layers

    def _mask(self, backbone: Any, hidden: Any, mask: Any) -> Any:
        return self.masking.create_bidirectional_mask(
            config=backbone.config, inputs_embeds=hidden, attention_mask=mask
        )

    def _run(self, backbone: Any, layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
        extended = self._mask(backbone, hidden, mask)
        for layer in layers:
            out = layer(hidden, attention_mask=extended)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def bottom(self, frozen: Any, input_ids: Any, mask: Any) -> Any:
        """Hidden states after the frozen layers of `frozen` (the model or its int8 copy)."""
        backbone = frozen.backbone
        with self.torch.inference_mode():
            hidden = backbone.embeddings(input_ids=input_ids)
            return self._run(backbone, backbone.encoder.layer[: self.cut], hidden, mask)

    def top(self, hidden: Any, mask: Any) -> Any:
        """Logits from cached bottom hidden states, through the trainable layers and the head."""
        backbone = self.model.backbone
        hidden = self._run(backbone, backbone.encoder.layer[self.cut :], hidden, mask)
        pooled = self.mean_pool(hidden, mask)
        return self.model.head(self.model.dropout(pooled))

    def check(self, input_ids: Any, mask: Any) -> None:
        with self.torch.inference_mode():
            expected = self.model(input_ids, mask)
            got = self.top(self.bottom(self.model, input_ids, mask), mask)
        if not self.torch.allclose(expected, got, atol=1e-4):
            raise RuntimeError(
                "the cached forward differs from the model's; the transformers layer API changed"
            )


def train(
    rows: Sequence[Example],
    out_dir: Path,
    settings: TrainSettings = TrainSettings(),
    *,
    backbone: Any = None,
    init: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune, calibrate on the validation rows, save the delta to `out_dir`; returns the metadata.

    `init` starts from the trained delta in that folder (same labels and trained layers) instead of
    the pip-installed backbone's own top layers and a fresh head.
    """
    torch = require("torch", "embed", _PURPOSE)
    tqdm = require("tqdm", "embed", _PURPOSE).tqdm
    from cosa_guard.encoder import (
        EncoderClassifier,
        EncoderConfig,
        EncoderPredictor,
        load_tokenizer,
        quantize_int8,
    )

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    train_rows = [r for r in rows if r.split == TRAIN]
    val_rows = [r for r in rows if r.split == VAL]
    if settings.max_train is not None and len(train_rows) > settings.max_train:
        train_rows = rng.sample(train_rows, settings.max_train)
    if not train_rows or not val_rows:
        raise ValueError("the corpus needs both training and validation rows")

    tokenizer = load_tokenizer()
    ids, owners = training_windows(tokenizer, train_rows, settings)
    y = torch.tensor(labels_matrix([train_rows[i] for i in owners]))
    weights = torch.tensor(
        [settings.benign_weight if train_rows[i].kind in BENIGN_KINDS else 1.0 for i in owners]
    )

    config = EncoderConfig(
        labels=CATEGORY_IDS,
        multi_label=True,
        trainable_layers=settings.trainable_layers,
        max_length=settings.max_length,
        stride=settings.stride,
    )
    model = EncoderClassifier(config, backbone=backbone)
    started_from = _warm_start(model, init) if init is not None else None
    model.train(False)
    split = _SplitForward(model)
    pad = int(tokenizer.pad_token_id)
    frozen = quantize_int8(model)
    started = time.monotonic()
    cached: list[tuple[list[int], Any, Any]] = []
    for batch in tqdm(
        _batches([len(x) for x in ids], settings.batch_size), desc="frozen layers", disable=not progress
    ):
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.tensor([ids[i] + [pad] * (width - len(ids[i])) for i in batch])
        mask = (input_ids != pad).long()
        if not cached:
            split.check(input_ids, mask)
        cached.append((batch, split.bottom(frozen, input_ids, mask).to(torch.float16), mask))
    del frozen

    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": settings.lr}, {"params": head, "lr": settings.head_lr}], weight_decay=0.01
    )
    # Rare categories get a larger positive weight, capped so that noise in them is not amplified.
    positives = y.sum(dim=0)
    pos_weight = ((len(ids) - positives) / positives.clamp(min=1)).sqrt().clamp(max=4.0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    total = max(1, math.ceil(len(cached) * settings.epochs))
    warmup = max(1, total // 20)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    step, stopped_early, running = 0, False, 0.0
    loop_started = time.monotonic()
    loop_budget = max(1.0, settings.time_budget_s - (loop_started - started))
    model.train(True)
    bar = tqdm(total=total, desc="training category judge", disable=not progress)
    while step < total and not stopped_early:
        order = list(range(len(cached)))
        rng.shuffle(order)
        for k in order:
            if step >= total:
                break
            if time.monotonic() - started > settings.time_budget_s:
                stopped_early = True
                break
            # Linear warm-up, then linear decay to zero by the last planned step or the end of the
            # time budget, whichever comes first: a run cut short by a busy CPU still anneals.
            done = max(step / total, (time.monotonic() - loop_started) / loop_budget)
            factor = max(0.0, min((step + 1) / warmup, 1.0 - done))
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
            batch, hidden, mask = cached[k]
            # A weighted mean over the batch's windows: with every weight 1, the plain mean.
            per_window = loss_fn(split.top(hidden.to(torch.float32), mask), y[batch]).mean(dim=1)
            loss = (per_window * weights[batch]).sum() / weights[batch].sum()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body + head, 1.0)
            optimizer.step()
            step += 1
            value = float(loss.detach())
            running = 0.9 * running + 0.1 * value if step > 1 else value
            bar.set_postfix(loss=f"{running:.3f}")
            bar.update(1)
    bar.close()
    train_s = time.monotonic() - started
    del cached

    model.train(False)
    model.round_trip()  # calibrate on exactly the float16 weights that ship
    judge = CategoryJudge(EncoderPredictor(model, int8=True), prompt_tokens=settings.prompt_tokens)
    probs = score_rows(judge, val_rows, progress=progress)
    metadata: dict[str, Any] = {
        **_calibrated(probs, val_rows, settings.beta, settings.max_benign_fpr, settings.per_source_cap),
        "prompt_tokens": settings.prompt_tokens,
        "corpus": {
            "fingerprint": corpus_fingerprint(rows),
            "train_rows_used": len(train_rows),
            "train_windows": len(ids),
            "val_rows": len(val_rows),
            "sources": sorted({r.source for r in rows}),
        },
        "training": {
            "steps": step,
            "planned_steps": total,
            "stopped_early": stopped_early,
            "seconds": round(train_s, 1),
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "trainable_layers": settings.trainable_layers,
            "lr": settings.lr,
            "head_lr": settings.head_lr,
            "seed": settings.seed,
            "negative_windows": settings.negative_windows,
            "benign_weight": settings.benign_weight,
            "init": started_from,
            "torch": str(torch.__version__),
        },
    }
    model.config = dataclasses.replace(config, metadata=metadata)
    model.save(out_dir)
    return metadata


def _warm_start(model: Any, init: Path) -> dict[str, Any]:
    """Load the trained delta in `init` into `model`; returns what it was (for the metadata)."""
    from cosa_guard.encoder import EncoderClassifier

    start = EncoderClassifier.load(init)
    if (start.config.labels, start.config.trainable_layers) != (
        model.config.labels,
        model.config.trainable_layers,
    ):
        raise ValueError(f"{init} holds other labels or another number of trained layers")
    model.load_state_dict(start.trainable_state(), strict=False)
    meta = start.config.metadata
    return {
        "from": str(init),
        "corpus_fingerprint": meta.get("corpus", {}).get("fingerprint"),
        "steps": meta.get("training", {}).get("steps"),
    }


def _calibrated(
    probs: Sequence[Sequence[float]],
    val_rows: Sequence[Example],
    beta: float,
    max_benign_fpr: float | None,
    per_source: bool,
) -> dict[str, Any]:
    """The thresholds (`calibrate` on the scores of `val_rows`) and how they were chosen, as metadata."""
    cap = ""
    if max_benign_fpr is not None:
        within = " of each source's" if per_source else ""
        cap = f", raised to flag <= {max_benign_fpr:g}{within} of real benign answers"
    return {
        "thresholds": calibrate(probs, val_rows, beta, max_benign_fpr, per_source=per_source),
        "threshold_objective": f"F{beta:g} per category on the validation split{cap}",
        "threshold_beta": beta,
        "max_benign_fpr": max_benign_fpr,
        "benign_cap_per_source": per_source,
    }


def recalibrate(
    directory: Path,
    rows: Sequence[Example],
    beta: float,
    max_benign_fpr: float | None = None,
    *,
    per_source: bool = True,
    scores: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Re-pick the thresholds of trained weights in `directory`; weights untouched.

    Training depends on neither `beta` nor the cap, so this equals retraining with them, minus the
    training. `scores`: a scores file (`cached_scores`) to reuse and extend.
    """
    from cosa_guard.encoder import CONFIG_FILE, EncoderClassifier, EncoderPredictor

    model = EncoderClassifier.load(directory)
    val_rows = [r for r in rows if r.split == VAL]
    prompt_tokens = int(model.config.metadata.get("prompt_tokens", PROMPT_TOKENS))
    judge = CategoryJudge(EncoderPredictor(model, int8=True), prompt_tokens=prompt_tokens)
    probs = cached_scores(judge, val_rows, directory, scores, progress=progress)
    metadata = {
        **model.config.metadata,
        **_calibrated(probs, val_rows, beta, max_benign_fpr, per_source),
    }
    config = dataclasses.replace(model.config, metadata=metadata)
    (directory / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    return metadata


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cosa-guard train judge`."""
    defaults = TrainSettings()
    parser.add_argument(
        "--out", type=Path, default=WEIGHTS_DIR, help="output folder (default: the package's)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="shared data folder (default: ../shared/data)"
    )
    parser.add_argument("--no-public", action="store_true", help="train on the synthetic rows only")
    parser.add_argument("--no-real", action="store_true", help="leave out the real-traffic exchanges")
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--head-lr", type=float, default=defaults.head_lr)
    parser.add_argument("--trainable-layers", type=int, default=defaults.trainable_layers)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--beta", type=float, default=defaults.beta, help="F-beta used to pick thresholds")
    parser.add_argument(
        "--max-benign-fpr",
        type=float,
        default=defaults.max_benign_fpr,
        help="then raise thresholds until at most this share of real benign answers is flagged "
        "(default: %(default)g; a negative value: no cap)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--negative-windows",
        type=int,
        default=defaults.negative_windows,
        help="later windows of each answer with no category trained as negatives (default: %(default)d)",
    )
    parser.add_argument(
        "--benign-weight",
        type=float,
        default=defaults.benign_weight,
        help="loss weight of real benign answers and their windows (default: %(default)g)",
    )
    parser.add_argument("--max-train", type=int, default=None, help="subsample the training split")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=defaults.time_budget_s / 60,
        help="minutes of training before stopping (default: %(default)g)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--init", type=Path, default=None, help="start from the trained judge in this folder (warm start)"
    )
    parser.add_argument(
        "--pooled-cap",
        action="store_true",
        help="apply --max-benign-fpr to all real benign answers pooled, not to each source",
    )
    parser.add_argument(
        "--scores",
        type=Path,
        default=None,
        help="with --calibrate-only: a scores file to reuse and extend (see benchmarks/judge.py --scores)",
    )
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="no training: re-pick the thresholds of the weights in --out with --beta",
    )


def run(args: argparse.Namespace) -> int:
    """`cosa-guard train judge`: train (or only recalibrate) and print the written metadata."""
    if args.threads:
        require("torch", "embed", _PURPOSE).set_num_threads(args.threads)
    rows = judge_corpus(args.data, args.seed, public=not args.no_public, real=not args.no_real)
    max_fpr = args.max_benign_fpr if args.max_benign_fpr >= 0 else None
    if args.calibrate_only:
        metadata = recalibrate(
            args.out, rows, args.beta, max_fpr, per_source=not args.pooled_cap, scores=args.scores
        )
        print(json.dumps({"out": str(args.out), **metadata}, indent=2))
        return 0
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head_lr=args.head_lr,
        trainable_layers=args.trainable_layers,
        max_length=args.max_length,
        beta=args.beta,
        max_benign_fpr=max_fpr,
        per_source_cap=not args.pooled_cap,
        seed=args.seed,
        time_budget_s=args.time_budget * 60,
        max_train=args.max_train,
        negative_windows=args.negative_windows,
        benign_weight=args.benign_weight,
    )
    metadata = train(rows, args.out, settings, init=args.init)
    print(json.dumps({"out": str(args.out), **metadata}, indent=2))
    return 0
