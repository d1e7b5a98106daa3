"""The one-time conversion into the engine's format: the builder's child process, its progress, the cache."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from cosa_guard import embedded, onnx_export

pytest.importorskip("tqdm")

# Stands in for onnxruntime-genai's builder: the same command line, log lines and output file.
FAKE_BUILDER = """
import argparse, pathlib, sys
parser = argparse.ArgumentParser()
for flag in ("-i", "-o", "-p", "-e", "-c"):
    parser.add_argument(flag)
parser.add_argument("--extra_options", nargs="+")
args = parser.parse_args()
if args.p == "fp32":
    sys.exit("fp32 is broken in this fake")
for layer in range(2):
    print(f"Reading layer {layer}")
out = pathlib.Path(args.o)
(out / "genai_config.json").write_text(" ".join([args.i, args.p, *args.extra_options]))
"""


@pytest.fixture
def fake_builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "fake_builder.py").write_text(textwrap.dedent(FAKE_BUILDER), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    monkeypatch.setattr(onnx_export, "_BUILDER", "fake_builder")
    # The fake needs no onnxruntime-genai; progress bars still come from tqdm.
    monkeypatch.setattr(onnx_export, "require", lambda module, *args: sys.modules.get(module))
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"num_hidden_layers": 2}), encoding="utf-8")
    return hf


def test_the_builder_gets_the_folder_precision_and_options(fake_builder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    onnx_export.export_onnx(fake_builder, out, precision="int4", progress=False)
    written = (out / "genai_config.json").read_text(encoding="utf-8").split()
    assert written == [str(fake_builder), "int4", *onnx_export.BUILDER_OPTIONS["int4"]]


def test_a_failing_builder_is_a_conversion_error_with_its_log(fake_builder: Path, tmp_path: Path) -> None:
    with pytest.raises(onnx_export.ModelConversionError, match="fp32 is broken in this fake"):
        onnx_export.export_onnx(fake_builder, tmp_path, precision="fp32", progress=False)


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="int4"):
        onnx_export.builder_options("int3")


def test_the_engine_folder_is_built_once_per_precision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime_genai")
    gguf = tmp_path / embedded.GGUF_FILE
    gguf.write_bytes(b"x" * 10)
    monkeypatch.setattr(embedded, "embedded_gguf", lambda: gguf)
    monkeypatch.setattr(embedded, "embedded_model_dir", lambda **kwargs: tmp_path / "bf16")
    built: list[str] = []

    def export(source: Path, out: Path, *, precision: str, progress: bool) -> None:
        assert source == tmp_path / "bf16"
        built.append(precision)
        (out / "genai_config.json").write_text("{}", encoding="utf-8")

    monkeypatch.setattr(onnx_export, "export_onnx", export)
    cache = tmp_path / "cache"
    first = embedded.embedded_engine_dir(cache_dir=cache, progress=False)
    assert embedded.embedded_engine_dir(cache_dir=cache, progress=False) == first
    assert (first / "genai_config.json").is_file() and built == ["int4"]
    assert embedded.embedded_engine_dir("fp32", cache_dir=cache, progress=False) != first
    assert built == ["int4", "fp32"]
    assert not [p for p in cache.glob(".smollm2-*") if p.is_dir()], "a staging folder was left behind"
