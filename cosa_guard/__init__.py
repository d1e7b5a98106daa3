"""cosa_guard: guardrail middleware for LLM apps with signed, per-deployment safety configs (CoSA).

`import cosa_guard` loads only light dependencies (pydantic, cachetools, cryptography, httpx,
PyYAML). Model backends, the server, the trained classifiers and evaluation plots import their
heavy dependencies lazily.
"""

from __future__ import annotations

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
    Retraction,
    Route,
    TextDelta,
    Verdict,
)

__version__ = "0.1.0"

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
    "GuardResponse",
    "JudgeError",
    "Message",
    "MissingExtraError",
    "RefusalReason",
    "Retraction",
    "Route",
    "SafetyConfig",
    "Taxonomy",
    "TextDelta",
    "UnknownDeploymentError",
    "Verdict",
    "__version__",
]
