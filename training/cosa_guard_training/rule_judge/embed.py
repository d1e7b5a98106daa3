"""Embedding cache: every answer window, request and rule text through the frozen int8 backbone, once.

The head trains over these embeddings, so the backbone's forward passes (the slow part on a CPU)
are paid once per text. The cache maps each text (with the cutting settings and the torch
version) to its embedding, so changing a few answers or rewording the rules embeds only what
changed. Each text runs in its own forward pass, exactly as `RuleScorer.score` embeds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cosa_guard.judges.rule_model import ScorerConfig, TextEmbedder
from cosa_guard_training.rule_judge.corpus import Answer, Inventory, Pair

NEAR_DUPLICATE = 0.72  # measured: above it, subject pairs were the same thing from two sources


@dataclass
class Embedded:
    """Answer windows (flattened, with each answer's slice), request and rule embeddings."""

    windows: torch.Tensor  # (total windows, dim)
    spans: dict[str, tuple[int, int]]  # answer id -> [start, end) rows of `windows`
    requests: dict[str, torch.Tensor]  # answer id -> (dim,)
    rules: dict[str, torch.Tensor]  # rule text -> (dim,)


class TextCache:
    """Text -> embedding tensor, kept in one file per kind of text and cutting settings."""

    def __init__(self, cache_dir: Path | None, kind: str, settings: Sequence[int]) -> None:
        tag = hashlib.sha256(json.dumps([kind, list(settings), torch.__version__]).encode()).hexdigest()[:12]
        self.path = cache_dir / f"rule_judge_{kind}_{tag}.pt" if cache_dir is not None else None
        loaded = torch.load(self.path) if self.path is not None and self.path.exists() else {}
        self.data: dict[str, torch.Tensor] = loaded
        self.dirty = False

    def get(self, text: str, embed: Callable[[str], torch.Tensor]) -> torch.Tensor:
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if key not in self.data:
            self.data[key] = embed(text)
            self.dirty = True
        return self.data[key]

    def save(self) -> None:
        if self.path is not None and self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            torch.save(self.data, tmp)
            tmp.replace(self.path)


def embed_corpus(
    embedder: TextEmbedder,
    answers: Sequence[Answer],
    pairs: Sequence[Pair],
    config: ScorerConfig,
    cache_dir: Path | None,
    *,
    progress: bool = True,
    answer_embedder: TextEmbedder | None = None,
) -> Embedded:
    """Everything `pairs` needs embedded, from `cache_dir` where an earlier run embedded it.

    `answer_embedder` (a fine-tuned answer tower) embeds the answer windows instead of `embedder`;
    those are not cached, since they change with the tower's weights."""
    windows = TextCache(
        cache_dir if answer_embedder is None else None, "windows", [config.max_length, config.stride]
    )
    answer_side = answer_embedder if answer_embedder is not None else embedder
    requests = TextCache(cache_dir, "request", [config.request_tokens])
    rules = TextCache(cache_dir, "rule", [config.rule_tokens])
    chunks: list[torch.Tensor] = []
    spans: dict[str, tuple[int, int]] = {}
    by_answer: dict[str, torch.Tensor] = {}
    start = 0
    with torch.inference_mode():
        for a in tqdm(answers, desc="embedding answers", disable=not progress):
            w = windows.get(a.response, lambda t: answer_side.windows(t, config.max_length, config.stride))
            chunks.append(w)
            spans[a.id] = (start, start + w.shape[0])
            start += w.shape[0]
            by_answer[a.id] = requests.get(a.request, lambda t: embedder.one(t, config.request_tokens))
        texts = sorted({p.rule for p in pairs})
        by_rule = {
            t: rules.get(t, lambda x: embedder.one(x, config.rule_tokens))
            for t in tqdm(texts, desc="embedding rules", disable=not progress)
        }
    for cache in (windows, requests, rules):
        cache.save()
    return Embedded(torch.cat(chunks), spans, by_answer, by_rule)


def near_duplicates(
    inv: Inventory, embedder: TextEmbedder, threshold: float = NEAR_DUPLICATE
) -> dict[str, frozenset[str]]:
    """Narrow subjects whose mean phrase embeddings have cosine >= `threshold` with each other
    ("email scam" and "mail scam", GPTFuzz's and JailbreakBench's insider trading)."""
    subjects = [s for s in inv.by_id.values() if s.phrases and s.id not in inv.broad]
    with torch.inference_mode():
        vectors = torch.stack(
            [
                torch.nn.functional.normalize(
                    torch.stack([embedder.one(p, 32) for p in s.phrases]).mean(0), dim=0
                )
                for s in subjects
            ]
        )
    close = (vectors @ vectors.T) >= threshold
    out: dict[str, frozenset[str]] = {}
    for i, subject in enumerate(subjects):
        others = frozenset(subjects[j].id for j in close[i].nonzero().flatten().tolist() if j != i)
        if others:
            out[subject.id] = others
    return out
