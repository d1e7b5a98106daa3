"""build_backend: one BackendSpec kind → the right backend, with errors that say what to fix."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from cosa_guard.backends import factory
from cosa_guard.backends.factory import BACKEND_KINDS, backend_kinds, build_backend
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


def fake_distribution(folder: Path, entries: str) -> None:
    """An installed distribution `fake-backends` whose `cosa_guard.backends` entry points are `entries`."""
    info = folder / "fake_backends-1.0.dist-info"
    info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: fake-backends\nVersion: 1.0\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[cosa_guard.backends]\n{entries}\n", encoding="utf-8")


async def test_a_distribution_registers_a_kind_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_backend_kinds.py").write_text(
        "from cosa_guard.backends.fake import ScriptedBackend\n"
        "def build(spec, base_dir):\n"
        "    return ScriptedBackend([f'{spec.model} from {base_dir.name}'], name='echo')\n",
        encoding="utf-8",
    )
    fake_distribution(tmp_path, "echo = fake_backend_kinds:build\nscripted = fake_backend_kinds:build")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "echo" in backend_kinds()
    backend = build_backend(BackendSpec(kind="echo", model="m"), tmp_path / "deploy")
    assert (await backend.generate(HI, GenerationParams())).text == "m from deploy"
    # A built-in kind is never replaced by a registered one of the same name.
    scripted = build_backend(BackendSpec(kind="scripted", options={"replies": ["own"]}))
    assert (await scripted.generate(HI, GenerationParams())).text == "own"


def test_a_registered_kind_that_cannot_load_names_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(tmp_path, "broken = no_such_module_xyz:build")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DeploymentError, match=r"'broken' \(fake-backends\) cannot be loaded"):
        build_backend(BackendSpec(kind="broken"))


def test_langchain_without_its_distribution_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "entry_points", lambda **_: [])  # as if cosa-guard-langchain were absent
    with pytest.raises(DeploymentError, match="unknown backend kind 'langchain'") as info:
        build_backend(BackendSpec(kind="langchain", options={"import": "x:Y"}))
    assert "cosa-guard[langchain]" in str(info.value) and "cosa-guard-langchain" in str(info.value)


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
