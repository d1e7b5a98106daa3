"""Build a Backend from a deployments file's `BackendSpec`.

    routes:
      primary:  {kind: openai, model: cosalign-8b, base_url: http://gpu:8000/v1, api_key_env: VLLM_KEY}
      fallback: {kind: onnx, model: embedded}                  # the bundled SmolLM2, on a CPU engine
      # {kind: transformers, model: embedded}                  # the same model through transformers
      # {kind: vllm, model: /models/cosalign-8b, options: {max_model_len: 4096}}
      # {kind: langchain, options: {import: "langchain_openai:ChatOpenAI"}}  # from cosa-guard-langchain
      # {kind: scripted, options: {replies: ["Sure: ...", "I can't help with that."]}}

Relative model paths are resolved against the deployments file's folder. Heavy modules are
imported only for the kinds a file uses; a wrong spec raises `DeploymentError` naming the field.

Other distributions add kinds through the `cosa_guard.backends` entry-point group, each entry a
`Builder` (`(BackendSpec, base_dir) -> Backend`), as the CLI takes commands from `cosa_guard.cli`:
cosa-guard-langchain registers `langchain`. A built-in kind cannot be replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import cast

from cosa_guard.backends.base import Backend
from cosa_guard.errors import DeploymentError
from cosa_guard.settings import BackendSpec

__all__ = ["BACKEND_KINDS", "ENTRY_POINT_GROUP", "backend_kinds", "build_backend"]

Builder = Callable[[BackendSpec, Path], Backend]
ENTRY_POINT_GROUP = "cosa_guard.backends"
# Kinds that other distributions provide, and what to install for each.
_OPTIONAL_KINDS = {"langchain": "pip install 'cosa-guard[langchain]' (the cosa-guard-langchain distribution)"}


def _local_path(model: str, base_dir: Path) -> str:
    path = Path(model).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


def _openai(spec: BackendSpec, base_dir: Path) -> Backend:
    from cosa_guard.backends.openai import OpenAIBackend

    if not spec.model:
        raise DeploymentError("an openai backend needs `model` (the name the server knows the model by)")
    return OpenAIBackend.from_options(
        spec.model,
        base_url=spec.base_url,
        api_key_env=spec.api_key_env,
        timeout_s=spec.timeout_s,
        options=spec.options,
    )


def _local_model(spec: BackendSpec, base_dir: Path, embedded: str) -> str:
    """The spec's model: the embedded one (checked now) when unnamed, else a local path."""
    model = spec.model or embedded
    if model != embedded:
        return _local_path(model, base_dir)
    from cosa_guard.embedded import embedded_gguf

    embedded_gguf()  # a missing model package is a setup error: say so at load, not on the first request
    return model


def _transformers(spec: BackendSpec, base_dir: Path) -> Backend:
    from cosa_guard.backends.transformers import EMBEDDED, TransformersBackend

    return TransformersBackend(_local_model(spec, base_dir, EMBEDDED), **spec.options)


def _onnx(spec: BackendSpec, base_dir: Path) -> Backend:
    from cosa_guard.backends.onnx_genai import EMBEDDED, OnnxGenAIBackend

    return OnnxGenAIBackend(_local_model(spec, base_dir, EMBEDDED), **spec.options)


def _vllm(spec: BackendSpec, base_dir: Path) -> Backend:
    from cosa_guard.backends.vllm import VLLMBackend

    if not spec.model:
        raise DeploymentError("a vllm backend needs `model`: a model folder (or `embedded`)")
    model = spec.model
    if model == "embedded":
        from cosa_guard.embedded import embedded_model_dir

        model = str(embedded_model_dir())
    elif (base_dir / model).exists():  # otherwise a name vLLM resolves itself (its own cache or hub)
        model = _local_path(model, base_dir)
    options = dict(spec.options)
    settings = {k: options.pop(k) for k in ("name", "max_tokens") if k in options}
    return VLLMBackend(model, engine_options=options, **settings)


def _scripted(spec: BackendSpec, base_dir: Path) -> Backend:
    from cosa_guard.backends.fake import ScriptedBackend

    options = dict(spec.options)
    replies = options.pop("replies", ["ok"])
    if isinstance(replies, str) or not all(isinstance(r, str) for r in replies):
        raise DeploymentError("a scripted backend's options.replies must be a list of strings")
    options.setdefault("name", spec.model or "scripted")
    return ScriptedBackend(replies, **options)


BACKEND_KINDS: Mapping[str, Builder] = {
    "openai": _openai,
    "vllm": _vllm,
    "transformers": _transformers,
    "onnx": _onnx,
    "scripted": _scripted,
}


def backend_kinds() -> list[str]:
    """Every kind this installation builds: the built-in ones and those other distributions register."""
    return sorted({*BACKEND_KINDS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def _builder(kind: str) -> Builder:
    if kind in BACKEND_KINDS:
        return BACKEND_KINDS[kind]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        dist = ep.dist.name if ep.dist else ep.value
        try:
            return cast("Builder", ep.load())
        except ImportError as exc:  # the distribution is there but one of its imports is not
            raise DeploymentError(f"backend kind {kind!r} ({dist}) cannot be loaded: {exc}") from exc
    hint = f"; it needs {_OPTIONAL_KINDS[kind]}" if kind in _OPTIONAL_KINDS else ""
    raise DeploymentError(
        f"unknown backend kind {kind!r}{hint}; this installation has: {', '.join(backend_kinds())}"
    )


def build_backend(spec: BackendSpec, base_dir: Path = Path(".")) -> Backend:
    """The backend `spec` describes; `base_dir` (the deployments file's folder) anchors relative paths."""
    builder = _builder(spec.kind)
    try:
        return builder(spec, base_dir)
    except TypeError as exc:  # an option the backend does not take
        raise DeploymentError(f"{spec.kind} backend {spec.model!r}: bad option: {exc}") from exc
