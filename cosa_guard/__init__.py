"""cosa_guard: guardrail middleware for LLM apps with signed, per-deployment safety configs (CoSA).

`import cosa_guard` loads only light dependencies (pydantic, cachetools, cryptography, httpx,
PyYAML). Model backends, the server, the trained classifiers and evaluation plots import their
heavy dependencies lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import (
    BackendError,
    BundleError,
    ConfigError,
    CosaGuardError,
    DeploymentError,
    JudgeError,
    MissingExtraError,
    UnknownDeploymentError,
)
from cosa_guard.taxonomy import DEFAULT_TAXONOMY, Category, Taxonomy
from cosa_guard.types import (
    Chunk,
    Completion,
    Decision,
    DecisionKind,
    FailureKind,
    FinalEvent,
    GenerationParams,
    GuardResponse,
    Message,
    RefusalReason,
    Route,
    TextDelta,
    Verdict,
)

if TYPE_CHECKING:
    from cosa_guard.guard import Guard

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The guard pulls in deployments, signing and YAML: load them on first use, not on `import cosa_guard`.
    if name == "Guard":
        from cosa_guard.guard import Guard

        return Guard
    raise AttributeError(f"module 'cosa_guard' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TAXONOMY",
    "BackendError",
    "BundleError",
    "Category",
    "Chunk",
    "Completion",
    "ConfigError",
    "CosaGuardError",
    "Decision",
    "DecisionKind",
    "DeploymentError",
    "FailureKind",
    "FinalEvent",
    "GenerationParams",
    "Guard",
    "GuardResponse",
    "JudgeError",
    "Message",
    "MissingExtraError",
    "RefusalReason",
    "Route",
    "SafetyConfig",
    "Taxonomy",
    "TextDelta",
    "UnknownDeploymentError",
    "Verdict",
    "__version__",
]
