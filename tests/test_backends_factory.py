"""build_backend: one BackendSpec kind → the right backend, with errors that say what to fix."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from cosa_guard.backends.factory import BACKEND_KINDS, build_backend
from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.backends.openai import OpenAIBackend
from cosa_guard.errors import DeploymentError
from cosa_guard.settings import BackendSpec
from cosa_guard.types import GenerationParams, Message

HI = (Message("user", "hi"),)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(DeploymentError, match="unknown backend kind 'ollama'") as info:
        build_backend(BackendSpec(kind="ollama", model="x"))
    for kind in BACKEND_KINDS:
        assert kind in str(info.value)


async def test_scripted_replies_in_order() -> None:
    backend = build_backend(BackendSpec(kind="scripted", options={"replies": ["one", "two"]}))
    assert isinstance(backend, ScriptedBackend)
    texts = [(await backend.generate(HI, GenerationParams())).text for _ in range(3)]
    assert texts == ["one", "two", "one"]


def test_scripted_rejects_a_bare_string() -> None:
    with pytest.raises(DeploymentError, match="list of strings"):
        build_backend(BackendSpec(kind="scripted", options={"replies": "oops"}))


def test_bad_option_is_a_deployment_error() -> None:
    with pytest.raises(DeploymentError, match="bad option"):
        build_backend(BackendSpec(kind="scripted", options={"temperature": 2}))


async def test_openai_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-test")
    spec = BackendSpec(kind="openai", model="m", base_url="http://gpu:8000/v1", api_key_env="UPSTREAM_KEY")
    backend = build_backend(spec)
    assert isinstance(backend, OpenAIBackend)
    assert backend._headers["authorization"] == "Bearer sk-test"
    assert backend._url == "http://gpu:8000/v1/chat/completions"
    await backend.aclose()
    monkeypatch.delenv("UPSTREAM_KEY")
    with pytest.raises(DeploymentError, match="UPSTREAM_KEY"):
        build_backend(spec)


def test_transformers_path_is_relative_to_the_deployments_file(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from cosa_guard.backends.transformers import TransformersBackend

    backend = build_backend(
        BackendSpec(kind="transformers", model="models/tiny", options={"progress": False}), tmp_path
    )
    assert isinstance(backend, TransformersBackend)
    assert backend.model == str(tmp_path / "models" / "tiny")


def test_onnx_path_is_relative_and_options_reach_the_backend(tmp_path: Path) -> None:
    from cosa_guard.backends.onnx_genai import OnnxGenAIBackend

    spec = BackendSpec(kind="onnx", model="models/tiny", options={"threads": 1, "max_queued": 2})
    backend = build_backend(spec, tmp_path)  # nothing is loaded before the first call
    assert isinstance(backend, OnnxGenAIBackend)
    assert backend.model == str(tmp_path / "models" / "tiny")
    with pytest.raises(DeploymentError, match="bad option"):
        build_backend(BackendSpec(kind="onnx", model="models/tiny", options={"dtype": "bf16"}), tmp_path)


@pytest.mark.parametrize("kind", ["transformers", "onnx"])
def test_embedded_without_the_model_package_fails_at_build(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from cosa_guard import embedded

    monkeypatch.setattr(embedded, "PACKAGE", "cosa_guard_no_such_model_package")
    with pytest.raises(embedded.EmbeddedModelMissingError):
        build_backend(BackendSpec(kind=kind, model="embedded"))


def test_vllm_options_split_into_backend_settings_and_engine_args(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = types.ModuleType("vllm")
    monkeypatch.setitem(sys.modules, "vllm", fake)
    (tmp_path / "weights").mkdir()
    spec = BackendSpec(kind="vllm", model="weights", options={"max_tokens": 64, "max_model_len": 2048})
    backend = build_backend(spec, tmp_path)
    assert backend.model == str(tmp_path / "weights")  # type: ignore[attr-defined]
    assert backend.max_tokens == 64  # type: ignore[attr-defined]
    assert backend.engine_options == {"max_model_len": 2048}  # type: ignore[attr-defined]
    hub_name = build_backend(BackendSpec(kind="vllm", model="org/model"), tmp_path)
    assert hub_name.model == "org/model"  # type: ignore[attr-defined]


class EchoChatModel:
    """Stands in for a LangChain chat model class; records how it was built."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs

    async def ainvoke(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError


def test_langchain_imports_and_builds_the_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_core")
    module = types.ModuleType("my_models")
    module.Chat = EchoChatModel  # type: ignore[attr-defined]
    module.ready = EchoChatModel(model="prebuilt")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_models", module)

    spec = BackendSpec(
        kind="langchain", model="gpt-x", options={"import": "my_models:Chat", "kwargs": {"temperature": 0}}
    )
    backend = build_backend(spec)
    assert backend.chat_model.kwargs == {"temperature": 0, "model": "gpt-x"}  # type: ignore[attr-defined]
    prebuilt = build_backend(
        BackendSpec(kind="langchain", options={"import": "my_models:ready", "name": "lc"})
    )
    assert prebuilt.chat_model is module.ready  # type: ignore[attr-defined]
    assert prebuilt.name == "lc"


@pytest.mark.parametrize(
    ("options", "message"),
    [({}, "options.import"), ({"import": "no_such_module_xyz:Chat"}, "cannot import")],
)
def test_langchain_spec_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        build_backend(BackendSpec(kind="langchain", options=options))
