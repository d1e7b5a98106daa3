"""A signed deployment on disk in one call, for tests (it lives in `cosa_guard.signed_deployment`).

path, api_key = write_signed_deployment(tmp_path, SafetyConfig(id="game", version=1, text="..."))
registry = DeploymentRegistry.load(path)
"""

from __future__ import annotations

from cosa_guard.settings import new_api_key
from cosa_guard.signed_deployment import write_signed_deployment

__all__ = ["new_api_key", "write_signed_deployment"]
