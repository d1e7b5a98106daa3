"""cosa_guard: guardrail middleware for LLM apps with signed, per-deployment safety configs (CoSA).

`import cosa_guard` loads only light dependencies (pydantic, cachetools, cryptography, httpx,
PyYAML). Model backends, the server, the trained classifiers and evaluation plots import their
heavy dependencies lazily.

The extension points are exported here: a model behind `Backend`, a response checker behind
`Judge`, an input check behind `InputGuard`; `DeploymentRegistry` loads the signed deployments a
`Guard` serves, each a `LoadedDeployment`. Fakes for tests live in `cosa_guard.testing` and
beside each protocol (`cosa_guard.backends.fake`, `cosa_guard.judges.fake`).
"""

from __future__ import annotations

import importlib
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
    from cosa_guard.backends.base import Backend
    from cosa_guard.deployments import DeploymentRegistry, LoadedDeployment
    from cosa_guard.guard import Guard
    from cosa_guard.injection.base import InputGuard
    from cosa_guard.judges.base import Judge

__version__ = "0.1.0"

# Loaded on first use, not on `import cosa_guard`: the guard and the deployments pull in signing,
# YAML and the call path, and the protocols' modules the deployment settings models.
_LAZY = {
    "Backend": "cosa_guard.backends.base",
    "DeploymentRegistry": "cosa_guard.deployments",
    "Guard": "cosa_guard.guard",
    "InputGuard": "cosa_guard.injection.base",
    "Judge": "cosa_guard.judges.base",
    "LoadedDeployment": "cosa_guard.deployments",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cosa_guard' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_TAXONOMY",
    "Backend",
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
    "DeploymentRegistry",
    "FailureKind",
    "FinalEvent",
    "GenerationParams",
    "Guard",
    "GuardResponse",
    "InputGuard",
    "Judge",
    "JudgeError",
    "LoadedDeployment",
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
