"""The rule judge's scorer: for each rule, p(the answer does what the rule is about).

The frozen all-MiniLM-L6-v2 backbone (`cosa_guard.encoder`, int8 linear layers) embeds three
things, each in its own forward pass (int8 activation ranges follow the batch, so a text's
embedding never depends on its neighbours): the answer in overlapping windows, the request (head
and tail, `request_tokens`), and each rule's text, cached by text (rules are static and signed,
so a config's rules are embedded once). Windows are short (64 tokens): the backbone was trained on
sentences, and the mean over a long window blurs one violating sentence among harmless ones. A
small trained head (`RuleHead`) reads [w, r*w, |r-w|, r*q] for rule r, answer window w and
request q and gives one logit per (rule, window); a rule's score is the maximum over the windows,
so a violation at the end of a long, harmless answer still counts. The rule's polarity plays no
part here: the score says whether the answer does the rule's subject, and
`cosa_guard.judges.rules` decides what that means.

The answer tower may be fine-tuned (`ScorerConfig.trainable_layers`: its top layers, trained
jointly with the head); rules and requests always go through the frozen backbone, so a config's
rule embeddings stay computed once, and an answer costs one tower pass over its windows whatever
the number of rules. What ships: the head (`head.safetensors`, float16, ~0.8 MB), the fine-tuned
top layers of the answer tower when there are any (`answer_tower.safetensors`, float16, ~3.5 MB
per layer), and `rule_judge.json`, which records the data, command, thresholds and held-out
figures (`cosa-guard train rules` trains them; the code is in training/cosa_guard_training/rule_judge).
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosa_guard._optional import require
from cosa_guard.encoder import encode_windows, load_backbone, load_tokenizer, mean_pool, quantize_int8
from cosa_guard.judges.category import clip_prompt

_PURPOSE = "the rule judge"
require("torch", "embed", _PURPOSE)
import torch  # noqa: E402  (after the check, so a missing extra names itself)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data" / "rule_judge"
HEAD_FILE = "head.safetensors"
TOWER_FILE = "answer_tower.safetensors"
CONFIG_FILE = "rule_judge.json"
RULE_CACHE_SIZE = 4096  # rule texts kept embedded: far more than any deployment's configs hold


@dataclass(frozen=True)
class ScorerConfig:
    """The head's shape and how texts are cut; `metadata` holds thresholds, data and command."""

    dim: int = 384
    hidden: int = 256
    max_length: int = 64  # tokens per answer window, special tokens included
    stride: int = 16
    request_tokens: int = 64
    rule_tokens: int = 96
    dropout: float = 0.1
    trainable_layers: int = 0  # top layers of the answer tower fine-tuned (0: the frozen backbone)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["metadata"] = dict(self.metadata)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ScorerConfig:
        return cls(**json.loads(text))


def pair_features(rules: torch.Tensor, windows: torch.Tensor, requests: torch.Tensor) -> torch.Tensor:
    """Row-aligned (rule, window, request) embeddings -> the head's input, shape (n, 4 * dim).

    The rule alone is left out: with it the head learned which training subjects get violated and
    did worse on held-out subjects (held-out AUC 0.849 vs 0.872, same data and epochs)."""
    return torch.cat([windows, rules * windows, (rules - windows).abs(), rules * requests], dim=-1)


class RuleHead(torch.nn.Module):
    """An MLP over `pair_features`: one logit per row."""

    def __init__(self, config: ScorerConfig) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4 * config.dim, config.hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(config.dropout),
            torch.nn.Linear(config.hidden, 1),
        )

    def forward(self, rules: torch.Tensor, windows: torch.Tensor, requests: torch.Tensor) -> torch.Tensor:
        return self.net(pair_features(rules, windows, requests)).squeeze(-1)  # type: ignore[no-any-return]


def tower_layers(backbone: PreTrainedModel, trainable_layers: int) -> list[torch.nn.Module]:
    """The top `trainable_layers` transformer layers of `backbone` (the answer tower's tuned part)."""
    layers: Any = backbone.encoder.layer  # type: ignore[union-attr]
    if not 0 <= trainable_layers <= len(layers):
        raise ValueError(f"trainable_layers must be in 0..{len(layers)}, got {trainable_layers}")
    return list(layers[len(layers) - trainable_layers :])


def tower_state(backbone: PreTrainedModel, trainable_layers: int) -> dict[str, torch.Tensor]:
    """The tensors of the tuned top layers, named as in `backbone.state_dict()` (what ships)."""
    first = len(backbone.encoder.layer) - trainable_layers  # type: ignore[union-attr,arg-type]
    prefixes = tuple(f"encoder.layer.{i}." for i in range(first, first + trainable_layers))
    return {k: v for k, v in backbone.state_dict().items() if k.startswith(prefixes)}


def answer_tower(
    base: PreTrainedModel, state: Mapping[str, torch.Tensor], trainable_layers: int
) -> PreTrainedModel:
    """A copy of the frozen `base` with its top layers replaced by the shipped `state`."""
    expected = set(tower_state(base, trainable_layers))
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(
            f"answer tower weights do not match trainable_layers={trainable_layers} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); retrain or reinstall"
        )
    tower = copy.deepcopy(base)
    tower.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    return tower


def _half(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` as float16, contiguous: what ships (the scorer loads it back as float32)."""
    return {k: v.detach().to(torch.float16).contiguous() for k, v in sorted(state.items())}


class TextEmbedder:
    """Mean-pooled, L2-normalised backbone embeddings, each text in its own forward pass."""

    def __init__(
        self,
        backbone: PreTrainedModel | None = None,
        *,
        int8: bool = True,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        model = backbone if backbone is not None else load_backbone()
        model.train(False)
        self.model = quantize_int8(model) if int8 else model
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer()

    def _embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)

    def windows(self, text: str, max_length: int, stride: int) -> torch.Tensor:
        """One embedding per window of `text`, shape (windows, dim)."""
        win = encode_windows(self.tokenizer, [text], max_length, stride)
        return self._embed(win.input_ids, win.attention_mask)

    def one(self, text: str, max_tokens: int) -> torch.Tensor:
        """One embedding of `text` cut to `max_tokens` (head and tail kept), shape (dim,)."""
        clipped = clip_prompt(self.tokenizer, [text], max_tokens)[0]
        enc = self.tokenizer([clipped], truncation=True, max_length=max_tokens + 8, return_tensors="pt")
        return self._embed(enc["input_ids"], enc["attention_mask"])[0]


class RuleScorer:
    """Thread-safe scoring of an answer against a list of rule texts (blocking; call from a thread)."""

    def __init__(
        self,
        embedder: TextEmbedder,
        head: RuleHead,
        config: ScorerConfig,
        answers: TextEmbedder | None = None,
        tower: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """`embedder` embeds rules and requests; `answers` (default: `embedder`) the answer windows.
        `tower`: the float32 tuned layers of `answers`, kept for `save` (its model may be int8)."""
        head.train(False)
        if (config.trainable_layers > 0) != (tower is not None):
            raise ValueError("a fine-tuned answer tower needs its weights (tower) and trainable_layers > 0")
        self.embedder = embedder
        self.answers = answers if answers is not None else embedder
        self.tower = dict(tower) if tower is not None else None
        self.head = head
        self.config = config
        self._rules: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()  # quantised modules and the cache are shared across threads

    @classmethod
    def load(cls, path: str | Path | None = None, *, int8: bool = True) -> RuleScorer:
        st = require("safetensors.torch", "embed", _PURPOSE)
        directory = Path(path) if path is not None else WEIGHTS_DIR
        if not (directory / CONFIG_FILE).exists():
            raise FileNotFoundError(
                f"no rule judge weights in {directory}; train them with `cosa-guard train rules` "
                "or reinstall cosa-guard"
            )
        config = ScorerConfig.from_json((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        head = RuleHead(config)
        state = {k: v.to(torch.float32) for k, v in st.load_file(str(directory / HEAD_FILE)).items()}
        head.load_state_dict(state)
        if not config.trainable_layers:
            return cls(TextEmbedder(int8=int8), head, config)
        base = load_backbone()
        tower = st.load_file(str(directory / TOWER_FILE))
        answers = TextEmbedder(answer_tower(base, tower, config.trainable_layers), int8=int8)
        return cls(TextEmbedder(base, int8=int8), head, config, answers, tower)

    def save(self, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the head and the tuned tower layers (float16) and the config, with `metadata`
        replacing the stored one."""
        st = require("safetensors.torch", "embed", _PURPOSE)
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        st.save_file(_half(self.head.state_dict()), str(out / HEAD_FILE))
        if self.tower is not None:
            st.save_file(_half(self.tower), str(out / TOWER_FILE))
        else:
            (out / TOWER_FILE).unlink(missing_ok=True)  # a frozen-backbone head must not pick up stale layers
        config = (
            self.config if metadata is None else ScorerConfig(**{**asdict(self.config), "metadata": metadata})
        )
        (out / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        return out

    def rule_embedding(self, text: str) -> torch.Tensor:
        """The rule's embedding, from the cache when this text was seen before (call under the lock)."""
        cached = self._rules.get(text)
        if cached is None:
            cached = self.embedder.one(text, self.config.rule_tokens)
            self._rules[text] = cached
            if len(self._rules) > RULE_CACHE_SIZE:
                self._rules.popitem(last=False)
        else:
            self._rules.move_to_end(text)
        return cached

    def score(self, rules: Sequence[str], request: str, response: str) -> list[float]:
        """Per rule text, the probability that `response` (answering `request`) does what it is about."""
        if not rules:
            return []
        with self._lock, torch.inference_mode():
            r = torch.stack([self.rule_embedding(text) for text in rules])
            w = self.answers.windows(response, self.config.max_length, self.config.stride)
            q = self.embedder.one(request, self.config.request_tokens)
            n_rules, n_windows = r.shape[0], w.shape[0]
            logits = self.head(
                r.repeat_interleave(n_windows, dim=0),
                w.repeat(n_rules, 1),
                q.expand(n_rules * n_windows, -1),
            ).view(n_rules, n_windows)
            return torch.sigmoid(logits.max(dim=1).values).tolist()
