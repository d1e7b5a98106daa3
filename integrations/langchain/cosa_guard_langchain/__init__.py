"""LangChain integration for cosa_guard.

- `GuardedChatModel`: any chat model behind a deployment's guard (delegates `bind_tools` and
  `with_structured_output`; streaming obeys the deployment's stream mode).
- `guard_chain`: guard the model steps of an existing LCEL chain.
- `CosaGuardMiddleware`: a LangChain v1 agent middleware (needs the `agents` extra).
- `ChatModelBackend`: the guard backend that runs the LangChain model of the current call.
- `LangChainBackend`: any chat model as a backend of the core guard (deployments kind `langchain`).
- `GuardFailedError`, `GuardRefusalError` (both `GuardDecisionError`): what a failed call, and a
  refused one where asked (`raise_on_refusal=True`), raise.
"""

from __future__ import annotations

from typing import Any

from cosa_guard_langchain.backend import ChatModelBackend
from cosa_guard_langchain.chat_model import GuardedChatModel
from cosa_guard_langchain.errors import GuardDecisionError, GuardFailedError, GuardRefusalError
from cosa_guard_langchain.langchain_backend import LangChainBackend
from cosa_guard_langchain.runnable import guard_chain

__all__ = [
    "ChatModelBackend",
    "CosaGuardMiddleware",
    "GuardDecisionError",
    "GuardFailedError",
    "GuardRefusalError",
    "GuardedChatModel",
    "LangChainBackend",
    "guard_chain",
]


def __getattr__(name: str) -> Any:
    # The middleware needs `langchain` (the agents extra); importing the package must not.
    if name == "CosaGuardMiddleware":
        try:
            from cosa_guard_langchain.middleware import CosaGuardMiddleware
        except ImportError as exc:
            if exc.name is None or exc.name.split(".")[0] != "langchain":
                raise
            raise ImportError(
                "CosaGuardMiddleware needs LangChain v1 agents: pip install 'cosa-guard-langchain[agents]' "
                f"({exc})"
            ) from exc
        return CosaGuardMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
