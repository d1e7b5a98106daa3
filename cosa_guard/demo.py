"""The demo deployment: what `cosa-guard serve` and `cosa-guard chat` run when given no deployments file.

It is a realistic example, not a reviewed policy: the bundled config of a game studio that
allows fictional violence and stays strict on everything else (cosa_guard/data/demo/), signed
at first run with a reviewer key generated on this machine, served with the embedded model
behind the cascade and the best judge the project ships. Everything lives under one user
directory (`$COSA_GUARD_HOME/demo`, else `$XDG_DATA_HOME/cosa_guard/demo`, else
`~/.local/share/cosa_guard/demo`):

    keys/reviewer, keys/reviewer.pub   the local demo reviewer key (private key mode 0600)
    bundles/game-studio.json           the signed config
    deployments.yaml                   the deployment, with the API key stored as its hash
    api_key                            the demo API key in clear (mode 0600), so restarts keep it

The key is a *demo* key: anyone who can read that directory can use it, and the reviewer key
signed a config nobody reviewed. Real deployments are signed by a person with `cosa-guard sign`.
A newer bundled config or route layout is re-signed on the next call; the API key is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import BundleError
from cosa_guard.settings import hash_api_key, new_api_key
from cosa_guard.signed_deployment import write_signed_deployment
from cosa_guard.signing import load_bundle

DEMO_DEPLOYMENT_ID = "game-studio"
DEMO_REVIEWER = "local-demo-reviewer"
DEMO_NOTICE = (
    "This is a DEMO deployment: its config was signed by a key generated on this machine, not by a "
    "reviewer, and its API key is stored in clear under {directory}. Do not expose it beyond localhost."
)
# The cascade on the embedded model: it does not follow configs by itself, so the judge decides.
DEMO_SPEC: dict[str, Any] = {
    "routes": {"fallback": {"kind": "onnx", "model": "embedded"}},
    "judge": {"kind": "category"},
    "stream": {"mode": "holdback"},
    # A 135M model on a busy 2-core laptop can take longer than the 30 s server default for one answer.
    "deadline_s": 120,
}


@dataclass(frozen=True, slots=True)
class DemoDeployment:
    deployments_path: Path
    api_key: str
    deployment_id: str

    @property
    def notice(self) -> str:
        return DEMO_NOTICE.format(directory=self.deployments_path.parent)


def demo_home() -> Path:
    if home := os.environ.get("COSA_GUARD_HOME"):
        return Path(home).expanduser() / "demo"
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "cosa_guard" / "demo"


def demo_config() -> SafetyConfig:
    source = resources.files("cosa_guard") / "data" / "demo" / f"{DEMO_DEPLOYMENT_ID}.yaml"
    return SafetyConfig.from_yaml(source.read_text(encoding="utf-8"))


def _read_or_create_api_key(path: Path) -> str:
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    key = new_api_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def _is_current(directory: Path, config: SafetyConfig, api_key: str) -> bool:
    """True when the files on disk already describe this config, these routes and this key."""
    path = directory / "deployments.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = document["deployments"][DEMO_DEPLOYMENT_ID]
        signed = load_bundle(directory / spec["bundle"]).config()
    except (OSError, yaml.YAMLError, KeyError, TypeError, BundleError):
        return False
    wanted = {k: spec.get(k) for k in DEMO_SPEC}
    return (
        signed.hash == config.hash and spec.get("api_keys") == [hash_api_key(api_key)] and wanted == DEMO_SPEC
    )


def ensure_demo_deployment(directory: Path | None = None) -> DemoDeployment:
    """Create (at first run) or reuse the signed demo deployment; returns where it is and its API key."""
    directory = Path(directory) if directory is not None else demo_home()
    directory.mkdir(parents=True, exist_ok=True)
    config = demo_config()
    api_key = _read_or_create_api_key(directory / "api_key")
    if not _is_current(directory, config, api_key):
        write_signed_deployment(
            directory,
            config,
            DEMO_DEPLOYMENT_ID,
            reviewer=DEMO_REVIEWER,
            api_keys=[hash_api_key(api_key)],
            **DEMO_SPEC,
        )
    return DemoDeployment(directory / "deployments.yaml", api_key, DEMO_DEPLOYMENT_ID)
