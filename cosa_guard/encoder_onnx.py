"""An `EncoderClassifier` run by ONNX Runtime with int8 weights: the injection classifier's engine.

Measured on the shared 2-core box (docs/injection.md §7, "ONNX Runtime for the encoder"): one
128-token window 1.3-1.5x faster than torch dynamic int8 (`encoder.quantize_int8`), shorter
windows more (2.7x at 16 tokens). The recipe is the one that measured so:

- the backbone on eager attention (the default SDPA graph exports, but ORT does not fuse it);
- the legacy TorchScript exporter (`dynamo=False`, opset 17): the default one needs `onnxscript`;
- `quantize_dynamic` with QInt8 weights per tensor (QUInt8 weights ran at half the speed, per
  channel was no faster and moved more scores); activations are quantised per call, as in torch;
- a session with one intra-op thread, sequential: a second thread bought little on a loaded box.

The model is exported once, on first use, into `<cache>/encoder-onnx-<digest>` (`embedded.cache_root`,
the same file lock and atomic rename as the embedded model). The digest covers every tensor of
the model and its config, so the folder follows the weights whether they were read from files or
are still in memory (training scores its model before it ships it), plus the torch and onnxruntime
versions (an export from one pair is not trusted under another). A folder that does not load is
rebuilt. Outputs are logits; `EncoderPredictor` turns either engine's logits into probabilities.

Needs the `embed` extra (onnxruntime is in it); nothing imports this module until an ORT engine is asked for.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosa_guard._optional import require
from cosa_guard.embedded import cache_root, cached_build

_PURPOSE = "the ONNX Runtime engine of the trained text encoder"
require("torch", "embed", _PURPOSE)
import torch  # noqa: E402  (after the check, so a missing extra names itself)

if TYPE_CHECKING:
    # Type-only: `encoder` imports this module (lazily), so a runtime import back would be a cycle.
    from cosa_guard.encoder import EncoderClassifier

__all__ = ["MODEL_FILE", "OnnxForward", "export_int8", "model_digest", "onnx_forward"]

MODEL_FILE = "model.int8.onnx"
_FORMAT = 1  # bump when the export or quantisation recipe changes: older folders are rebuilt
_INPUTS = ("input_ids", "attention_mask")
_log = logging.getLogger(__name__)


def model_digest(model: EncoderClassifier) -> str:
    """sha256 of the model's architecture (config without metadata) and every tensor's bytes."""
    config = json.loads(model.config.to_json())
    config.pop("metadata")  # threshold, data hashes: they do not change the graph
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def export_int8(model: EncoderClassifier, out: Path) -> None:
    """Write `out/MODEL_FILE`: `model` (logits out, batch and sequence dynamic) with int8 weights."""
    quantization = require("onnxruntime.quantization", "embed", _PURPOSE)
    exported = _eager_copy(model)
    ids = torch.ones(2, model.config.max_length, dtype=torch.long)
    fp32 = out / "model.fp32.onnx"
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo (which needs onnxscript), and
        # tracing warns about every data-dependent branch of the model, none of which varies here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            exported,
            (ids, torch.ones_like(ids)),
            str(fp32),
            input_names=list(_INPUTS),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    with _quiet_quantizer():
        quantization.quantize_dynamic(
            str(fp32),
            str(out / MODEL_FILE),
            weight_type=quantization.QuantType.QInt8,
            per_channel=False,
            # Quantise tensors whose type shape inference leaves unknown as float too, not skip them.
            extra_options={"DefaultTensorType": 1},
        )
    fp32.unlink()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Keep the quantiser's chatter off the app's root logger, and its root logger unconfigured.

    The quantiser logs through `logging.info` / `logging.warning` (a line per layer, and advice
    to pre-process), and `logging.warning` on a root logger without handlers runs `basicConfig`,
    which would leave a stderr handler on the application's root logger for good. A null handler
    makes that a no-op; a filter drops the quantiser's own records below ERROR.
    """
    root = logging.getLogger()
    null = logging.NullHandler()

    def not_the_quantizer(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname

    root.addHandler(null)
    root.addFilter(not_the_quantizer)
    try:
        yield
    finally:
        root.removeFilter(not_the_quantizer)
        root.removeHandler(null)


def _eager_copy(model: EncoderClassifier) -> EncoderClassifier:
    """`model` in eval mode on eager attention, without touching the caller's model."""
    clone = copy.deepcopy(model)
    clone.train(False)
    clone.backbone.set_attn_implementation("eager")
    return clone


class OnnxForward:
    """The ORT engine's forward: (input ids, attention mask) → logits, as a torch tensor.

    It keeps the session only, not the torch model it was exported from (90 MB of fp32 weights).
    """

    def __init__(self, session: Any) -> None:
        self._session = session

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        (logits,) = self._session.run(["logits"], feed)
        return torch.from_numpy(logits)


def onnx_forward(model: EncoderClassifier, *, cache_dir: str | Path | None = None) -> OnnxForward:
    """The ORT int8 forward of `model`, exporting it on first use (see the module docstring)."""
    ort = require("onnxruntime", "embed", _PURPOSE)
    digest = model_digest(model)
    manifest = {
        "format": _FORMAT,
        "digest": digest,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
    }
    name = f"encoder-onnx-{digest[:16]}"

    def build(out: Path) -> None:
        _log.info(
            "exporting the text encoder to ONNX int8 once, into %s", Path(cache_dir or cache_root()) / name
        )
        export_int8(model, out)

    folder = cached_build(name, manifest, MODEL_FILE, build, cache_dir=cache_dir)
    try:
        session = _session(ort, folder / MODEL_FILE)
    except Exception as exc:  # onnxruntime raises its own types for a truncated or foreign file
        _log.warning("rebuilding %s: it does not load (%s: %s)", folder, type(exc).__name__, exc)
        shutil.rmtree(folder, ignore_errors=True)
        folder = cached_build(name, manifest, MODEL_FILE, build, cache_dir=cache_dir)
        session = _session(ort, folder / MODEL_FILE)
    return OnnxForward(session)


def _session(ort: Any, path: Path) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
