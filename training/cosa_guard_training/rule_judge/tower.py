"""Fine-tune the answer tower's top layers jointly with the head, over cached lower-layer states.

The frozen bottom layers (all but `trainable_layers`) run once per answer (int8, the answer's
windows in one forward pass, as `RuleScorer.score` runs them) and their token states are cached
(float16, one file, like the frozen embeddings in `embed`). A step runs only the top layers
(float32, with gradients) over the windows of a batch of whole answers, mean-pools and normalises
them into window vectors exactly as serving does, and trains them with the head on all the pairs
of those answers (multiple-instance: a pair's logit is the maximum over its answer's windows).
Rules and requests keep their frozen embeddings: they go through the frozen backbone at serving.
"""

from __future__ import annotations

import contextlib
import copy
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from cosa_guard.encoder import encode_windows, mean_pool
from cosa_guard.judges.rule_model import RuleHead, ScorerConfig, TextEmbedder, tower_layers
from cosa_guard_training.rule_judge.corpus import Answer, Pair
from cosa_guard_training.rule_judge.embed import Embedded, TextCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class TowerSettings:
    trainable_layers: int = 2
    epochs: int = 3
    answers_per_step: int = 48
    layer_lr: float = 3e-5
    head_lr: float = 3e-4  # the head starts from the frozen-backbone head (train.fit_head)
    weight_decay: float = 1e-4
    seed: int = 0
    time_budget_s: float = 35 * 60


@dataclass
class LowerStates:
    """Per answer, its windows' token states after the frozen bottom layers, padded to `max_length`."""

    states: torch.Tensor  # (windows, max_length, dim), float16
    mask: torch.Tensor  # (windows, max_length)
    spans: dict[str, tuple[int, int]]  # answer id -> [start, end) rows


@contextlib.contextmanager
def bottom_only(model: PreTrainedModel, trainable_layers: int) -> Iterator[None]:
    """Run `model` without its top `trainable_layers` layers (its output is then their input)."""
    encoder: Any = model.encoder
    layers = encoder.layer
    encoder.layer = torch.nn.ModuleList(list(layers)[: len(layers) - trainable_layers])
    try:
        yield
    finally:
        encoder.layer = layers


def lower_states(
    embedder: TextEmbedder,
    answers: Sequence[Answer],
    config: ScorerConfig,
    trainable_layers: int,
    cache_dir: Path | None,
    *,
    progress: bool = True,
) -> LowerStates:
    """The bottom layers' token states of every answer window (cached per answer text)."""
    cache = TextCache(cache_dir, f"lower{trainable_layers}", [config.max_length, config.stride])
    model = embedder.model
    rows: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    spans: dict[str, tuple[int, int]] = {}
    start = 0

    def embed(text: str) -> torch.Tensor:
        win = encode_windows(embedder.tokenizer, [text], config.max_length, config.stride)
        with bottom_only(model, trainable_layers):
            hidden: torch.Tensor = model(
                input_ids=win.input_ids, attention_mask=win.attention_mask
            ).last_hidden_state
        return hidden.to(torch.float16)

    with torch.inference_mode():
        for a in tqdm(answers, desc="bottom layers", disable=not progress):
            hidden = cache.get(a.response, embed)
            win = encode_windows(embedder.tokenizer, [a.response], config.max_length, config.stride)
            pad = config.max_length - hidden.shape[1]
            rows.append(torch.nn.functional.pad(hidden, (0, 0, 0, pad)))
            masks.append(torch.nn.functional.pad(win.attention_mask, (0, pad)))
            spans[a.id] = (start, start + hidden.shape[0])
            start += hidden.shape[0]
    cache.save()
    return LowerStates(torch.cat(rows), torch.cat(masks), spans)


class Top(torch.nn.Module):
    """The answer tower's top layers, on cached bottom states -> normalised window vectors."""

    def __init__(self, base: PreTrainedModel, trainable_layers: int) -> None:
        super().__init__()
        self.model_config = base.config
        self.first = len(base.encoder.layer) - trainable_layers  # type: ignore[union-attr,arg-type]
        self.layers = torch.nn.ModuleList(copy.deepcopy(tower_layers(base, trainable_layers)))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        length = int(mask.sum(dim=1).max())
        hidden, mask = states[:, :length].to(torch.float32), mask[:, :length]
        attention = create_bidirectional_mask(
            config=self.model_config, inputs_embeds=hidden, attention_mask=mask
        )
        for layer in self.layers:
            hidden = layer(hidden, attention)
        return torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)

    def state(self) -> dict[str, torch.Tensor]:
        """The layers' tensors named as in the backbone's state dict (`rule_model.answer_tower`)."""
        return {
            f"encoder.layer.{self.first + i}.{name}": t.detach().clone()
            for i, layer in enumerate(self.layers)
            for name, t in layer.state_dict().items()
        }


def window_vectors(top: Top, lower: LowerStates, rows: Sequence[int], batch: int = 256) -> torch.Tensor:
    """Window vectors of `rows` through `top` (no gradients)."""
    top.train(False)
    out = []
    with torch.inference_mode():
        for b in range(0, len(rows), batch):
            index = torch.tensor(rows[b : b + batch])
            out.append(top(lower.states[index], lower.mask[index]))
    return torch.cat(out)


def with_windows(emb: Embedded, top: Top, lower: LowerStates, answers: Sequence[str]) -> Embedded:
    """`emb` with the windows of `answers` re-embedded through `top` (other answers dropped)."""
    rows, spans = answer_rows(lower, answers)
    return Embedded(window_vectors(top, lower, rows), spans, emb.requests, emb.rules)


def answer_rows(lower: LowerStates, answers: Sequence[str]) -> tuple[list[int], dict[str, tuple[int, int]]]:
    """The rows of `lower` holding the windows of `answers`, and each answer's span in that list."""
    rows: list[int] = []
    spans: dict[str, tuple[int, int]] = {}
    for a in answers:
        start, end = lower.spans[a]
        spans[a] = (len(rows), len(rows) + end - start)
        rows.extend(range(start, end))
    return rows, spans


def fine_tune(
    base: PreTrainedModel,
    head: RuleHead,
    lower: LowerStates,
    emb: Embedded,
    pairs: Sequence[Pair],
    settings: TowerSettings,
    evaluate: Any = None,
    *,
    progress: bool = True,
) -> tuple[Top, RuleHead, list[float]]:
    """Train `Top` (from `base`'s float32 top layers) and `head` on `pairs`; keep the epoch that
    `evaluate(top, head)` (held-out AUC) rates best, if given. Returns them and each epoch's rating."""
    torch.manual_seed(settings.seed)
    top = Top(base, settings.trainable_layers)
    head = copy.deepcopy(head)
    optimiser = torch.optim.AdamW(
        [
            {"params": top.parameters(), "lr": settings.layer_lr},
            {"params": head.parameters(), "lr": settings.head_lr},
        ],
        weight_decay=settings.weight_decay,
    )
    rule_index = {t: i for i, t in enumerate(emb.rules)}
    rule_matrix = torch.stack(list(emb.rules.values()))
    by_answer: dict[str, list[Pair]] = {}
    for p in pairs:
        by_answer.setdefault(p.answer, []).append(p)
    positives = sum(p.label for p in pairs)
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor((len(pairs) - positives) / max(positives, 1))
    )
    order = sorted(by_answer)
    rng = random.Random(settings.seed)
    started = time.monotonic()
    ratings: list[float] = []
    best: tuple[float, dict[str, Any], dict[str, Any]] | None = None
    for epoch in range(settings.epochs):
        rng.shuffle(order)
        top.train(True)
        head.train(True)
        total = 0.0
        steps = range(0, len(order), settings.answers_per_step)
        for b in tqdm(steps, desc=f"tower epoch {epoch + 1}", disable=not progress):
            batch = order[b : b + settings.answers_per_step]
            window_rows, local = answer_rows(lower, batch)
            index = torch.tensor(window_rows)
            windows = top(lower.states[index], lower.mask[index])
            batch_pairs = [p for a in batch for p in by_answer[a]]
            rule_rows, win_rows, request_rows, owner = [], [], [], []
            for i, p in enumerate(batch_pairs):
                start, end = local[p.answer]
                for w in range(start, end):
                    rule_rows.append(rule_index[p.rule])
                    win_rows.append(w)
                    request_rows.append(p.answer)
                    owner.append(i)
            requests = torch.stack([emb.requests[a] for a in request_rows])
            logits = head(rule_matrix[rule_rows], windows[win_rows], requests)
            per_pair = torch.full((len(batch_pairs),), -1e9).scatter_reduce(
                0, torch.tensor(owner), logits, reduce="amax"
            )
            loss = loss_fn(per_pair, torch.tensor([float(p.label) for p in batch_pairs]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch_pairs)
        rating = float(evaluate(top, head)) if evaluate is not None else float("nan")
        ratings.append(rating)
        if progress:
            print(
                f"tower epoch {epoch + 1}: loss {total / len(pairs):.4f} held-out {rating:.4f}",
                file=sys.stderr,
                flush=True,
            )
        if best is None or not rating <= best[0]:  # NaN (no evaluate): the last epoch wins
            best = (rating, copy.deepcopy(top.state_dict()), copy.deepcopy(head.state_dict()))
        if time.monotonic() - started > settings.time_budget_s:
            break
    assert best is not None
    top.load_state_dict(best[1])
    head.load_state_dict(best[2])
    top.train(False)
    head.train(False)
    with torch.no_grad():  # score with exactly what ships (float16)
        for param in [*top.parameters(), *head.parameters()]:
            param.copy_(param.to(torch.float16).to(torch.float32))
    return top, head, ratings
