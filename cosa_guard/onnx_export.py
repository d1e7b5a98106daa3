"""Turn a Hugging Face causal-LM folder into an onnxruntime-genai model folder, once, with a progress bar.

onnxruntime-genai's model builder does the work (graph export, weight-only quantisation, the
`genai_config.json` and tokenizer files). It runs in a child process: it imports torch and
transformers, logs a line per layer and per quantised matrix, and allocates a few hundred MB that
a serving process should not keep. Its log is read to move the bar and kept out of the terminal;
a failure reports the log's last lines.

Precisions (`ENGINE_PRECISIONS`, options in `BUILDER_OPTIONS`):

- `int4` (the default): 4-bit weights by k-quant, with the output layer and the layers most
  sensitive to quantisation in 8 bits (the mix llama.cpp's Q4_K_M uses); activations in int8
  inside the matrix products (`accuracy_level=4`, the int8 dot-product kernels of x86 CPUs).
  Plain round-to-nearest int4, and even int8, changed answers far more on the benchmark prompts.
- `fp32`: the dense weights as they are; as faithful as transformers in fp32, and slower.

Both compute only the last position's logits while reading a prompt (`prune_lm_head`), which is
all decoding needs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from cosa_guard._optional import require
from cosa_guard.errors import CosaGuardError

__all__ = ["BUILDER_OPTIONS", "ENGINE_PRECISIONS", "ModelConversionError", "builder_options", "export_onnx"]

BUILDER_OPTIONS: dict[str, tuple[str, ...]] = {
    "int4": (
        "prune_lm_head=true",
        "accuracy_level=4",
        "algo_config=k_quant",
        "matmul_mixed_precision=last_matmul:int8,mixed_layers:int8",
    ),
    "fp32": ("prune_lm_head=true",),
}
ENGINE_PRECISIONS = tuple(BUILDER_OPTIONS)
_BUILDER = "onnxruntime_genai.models.builder"
# One log line per layer read and per matrix quantised: the units of the progress bar.
_PROGRESS_LINE = re.compile(r"Reading layer \d+|complete quantization of|k-quant quantization on")
_MATRICES_PER_LAYER = 5  # fused qkv, o, gate, up, down


class ModelConversionError(CosaGuardError):
    """The one-time conversion of a model into the engine's format failed."""


def builder_options(precision: str) -> tuple[str, ...]:
    """The builder's `--extra_options` for `precision` (part of a converted folder's identity)."""
    if precision not in BUILDER_OPTIONS:
        raise ValueError(f"precision must be one of {', '.join(ENGINE_PRECISIONS)}, not {precision!r}")
    return BUILDER_OPTIONS[precision]


def export_onnx(hf_dir: Path, out: Path, *, precision: str, progress: bool = True) -> None:
    """Write the onnxruntime-genai model for `hf_dir` into the empty folder `out`."""
    options = builder_options(precision)
    require("onnxruntime_genai", "engine", "the embedded inference engine")
    tqdm = require("tqdm", "hf", "progress bars").tqdm
    layers = int(json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"])
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # a local folder, never the hub
    tail: deque[str] = deque(maxlen=20)
    with (
        tempfile.TemporaryDirectory(prefix="cosa-guard-builder-") as scratch,
        tqdm(
            total=layers * (1 + _MATRICES_PER_LAYER) + 1 if precision != "fp32" else layers,
            desc=f"engine model ({precision})",
            unit="step",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        command = [sys.executable, "-m", _BUILDER, "-i", str(hf_dir), "-o", str(out), "-p", precision]
        command += ["-e", "cpu", "-c", scratch, "--extra_options", *options]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                tail.append(line.rstrip()[-300:])  # its own bars redraw one line with \r
                if _PROGRESS_LINE.search(line) and bar.n < bar.total:
                    bar.update()
        if child.returncode != 0 or not (out / "genai_config.json").is_file():
            log = "\n".join(tail)
            raise ModelConversionError(
                f"onnxruntime-genai's model builder failed (exit {child.returncode}) on {hf_dir}:\n{log}"
            )
        bar.update(bar.total - bar.n)
