"""Fixtures for the LangChain integration tests (helpers live in lc_fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cosa_guard_langchain import GuardedChatModel
from lc_fixtures import DEPLOYMENT, guard_options, write_deployment


@pytest.fixture
def make_guarded(tmp_path: Path) -> Iterator[Any]:
    """`make_guarded(model, mode="buffer")`: a GuardedChatModel over a freshly signed deployment."""

    def make(
        model: Any, mode: str = "buffer", *, raise_on_refusal: bool = False, **spec: Any
    ) -> GuardedChatModel:
        path, _ = write_deployment(tmp_path, mode, **spec)
        return GuardedChatModel.from_deployments(
            model, path, DEPLOYMENT, raise_on_refusal=raise_on_refusal, **guard_options()
        )

    yield make
