"""Embedding cache: every answer window, request and rule text through the frozen int8 backbone, once.

The head trains over these embeddings, so the backbone's forward passes (the slow part on a CPU)
are paid once per corpus and kept in a file keyed by the texts and the cutting settings (a rerun,
or a run with other head settings, loads it in seconds). Each text runs in its own forward pass,
exactly as `RuleScorer.score` embeds it at serving time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cosa_guard.judges.rule_model import ScorerConfig, TextEmbedder
from cosa_guard_training.rule_judge.corpus import Answer, Pair


@dataclass
class Embedded:
    """Answer windows (flattened, with each answer's slice), request and rule embeddings."""

    windows: torch.Tensor  # (total windows, dim)
    spans: dict[str, tuple[int, int]]  # answer id -> [start, end) rows of `windows`
    requests: dict[str, torch.Tensor]  # answer id -> (dim,)
    rules: dict[str, torch.Tensor]  # rule text -> (dim,)


def _key(parts: Sequence[object], config: ScorerConfig) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps([config.max_length, config.stride, config.request_tokens, config.rule_tokens]).encode()
    )
    digest.update(torch.__version__.encode())
    for part in parts:
        digest.update(json.dumps(part).encode("utf-8"))
    return digest.hexdigest()[:16]


def _cached(path: Path | None) -> dict[str, Any] | None:
    return torch.load(path) if path is not None and path.exists() else None  # type: ignore[no-any-return]


def _store(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(data, tmp)
        tmp.replace(path)


def embed_corpus(
    embedder: TextEmbedder,
    answers: Sequence[Answer],
    pairs: Sequence[Pair],
    config: ScorerConfig,
    cache_dir: Path | None,
    *,
    progress: bool = True,
) -> Embedded:
    """Everything `pairs` needs embedded, from `cache_dir` where an earlier run cached it.

    Answers and rules are cached apart: rewording the rules re-embeds only them (seconds).
    """
    rules = sorted({p.rule for p in pairs})
    answer_path = rule_path = None
    if cache_dir is not None:
        answer_path = (
            cache_dir
            / f"rule_judge_answers_{_key([[a.id, a.request, a.response] for a in answers], config)}.pt"
        )
        rule_path = cache_dir / f"rule_judge_rules_{_key(rules, config)}.pt"
    data = _cached(answer_path)
    if data is None:
        data = _embed_answers(embedder, answers, config, progress)
        _store(answer_path, data)
    rule_data = _cached(rule_path)
    if rule_data is None:
        with torch.inference_mode():
            rule_data = {
                t: embedder.one(t, config.rule_tokens)
                for t in tqdm(rules, desc="embedding rules", disable=not progress)
            }
        _store(rule_path, rule_data)
    return Embedded(data["windows"], data["spans"], data["requests"], rule_data)


def _embed_answers(
    embedder: TextEmbedder, answers: Sequence[Answer], config: ScorerConfig, progress: bool
) -> dict[str, Any]:
    chunks: list[torch.Tensor] = []
    spans: dict[str, tuple[int, int]] = {}
    requests: dict[str, torch.Tensor] = {}
    by_request: dict[str, torch.Tensor] = {}
    start = 0
    with torch.inference_mode():
        for a in tqdm(answers, desc="embedding answers", disable=not progress):
            w = embedder.windows(a.response, config.max_length, config.stride)
            chunks.append(w)
            spans[a.id] = (start, start + w.shape[0])
            start += w.shape[0]
            if a.request not in by_request:
                by_request[a.request] = embedder.one(a.request, config.request_tokens)
            requests[a.id] = by_request[a.request]
    return {"windows": torch.cat(chunks), "spans": spans, "requests": requests}
