"""LangChain's own standard test suites (`langchain-tests`) for `GuardedChatModel`.

Every LangChain partner package proves that its chat model behaves like a chat model with these
suites. Here the guarded model wraps `EchoToolModel`, a deterministic stand-in for a provider model
with tool calling (and `tool_choice`), structured output through tool calling or JSON mode, stop
sequences, usage metadata, per-call model overrides and content blocks of any kind; the guard runs
a real signed deployment with the structural input guard and a scripted judge. The capability
flags say what the guarded model supports when its wrapped model does. Every test runs with
sockets blocked: nothing reaches a network; the image, PDF and audio files the multimodal tests
download are stand-in bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cosa_guard_langchain import ChatModelBackend, GuardedChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from lc_fixtures import DEPLOYMENT, EchoToolModel, guard_options, write_deployment
from pytest_socket import disable_socket, enable_socket

from cosa_guard.guard import Guard


class _GuardedEcho:
    """The suites' shared setup: a guard over a freshly signed deployment, and the model's params."""

    guard: Guard

    @pytest.fixture(autouse=True)
    def _signed_deployment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        _, deployment = write_deployment(tmp_path)
        # A slot backend: the guard runs whichever model the GuardedChatModel of the call wraps.
        self.guard = Guard.single(deployment, fallback=ChatModelBackend(), **guard_options())
        # The multimodal tests fetch their files with httpx.get; the fake model never decodes them.
        monkeypatch.setattr(httpx, "get", lambda url, **_: httpx.Response(200, content=url.encode()))
        monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "cosa-guard-tests")  # else a warning
        disable_socket(allow_unix_socket=True)  # an event loop's self-pipe is a unix socket pair
        yield
        enable_socket()

    @property
    def chat_model_class(self) -> type[GuardedChatModel]:
        return GuardedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": EchoToolModel(), "guard": self.guard, "deployment_id": DEPLOYMENT}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        # `bind_tools(tools, **kwargs)` hands `tool_choice` to the wrapped model's own.
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "echo-tools-2"

    # Image, PDF and audio content blocks, in human and tool messages: the guard judges the text
    # and hands the wrapped model the app's own messages, blocks included (test_chat_model checks
    # that they arrive).
    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        # Anthropic's tool_use and signed thinking blocks reach the wrapped model as the app sent them.
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    # The suites skip serialization (a guard is not serializable), init from env vars
    # (GuardedChatModel reads none) and the VCR-recorded timing test.


class TestGuardedChatModelUnit(_GuardedEcho, ChatModelUnitTests):
    pass


class TestGuardedChatModelIntegration(_GuardedEcho, ChatModelIntegrationTests):
    pass
