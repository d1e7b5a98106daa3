"""A signed deployment on disk in one call: the demo deployment, and tests (through `cosa_guard.testing`).

    path, api_key = write_signed_deployment(tmp_path, SafetyConfig(id="game", version=1, text="..."))
    registry = DeploymentRegistry.load(path)
    registry.by_api_key(api_key).config.id          # "game"

It writes, under `directory`: a reviewer key pair (`keys/reviewer`, `keys/reviewer.pub`, reused
by later calls), the signed bundle (`bundles/<deployment id>.json`) and `deployments.yaml`, which
gains one deployment per call. The API key is returned in clear and stored only as its hash.
Routes default to a scripted cascade fallback; pass `routes=`, `judge=`, `floor=` or any other
`DeploymentSpec` field to change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cosa_guard.config import SafetyConfig
from cosa_guard.settings import DeploymentSpec, hash_api_key, new_api_key
from cosa_guard.signing import generate_key, load_private_key, sign_config, write_keypair

DEFAULT_ROUTES: dict[str, Any] = {"fallback": {"kind": "scripted"}}


def write_signed_deployment(
    directory: str | Path,
    config: SafetyConfig | Mapping[str, Any],
    deployment_id: str | None = None,
    reviewer: str = "reviewer",
    **spec_overrides: Any,
) -> tuple[Path, str]:
    """Sign `config` and add it as a deployment (id: `deployment_id` or the config's id).

    A `deployment_id` other than the config's id is bound to it with `config_id`.

    Returns the deployments file and the deployment's API key in clear.
    """
    directory = Path(directory)
    if not isinstance(config, SafetyConfig):
        config = SafetyConfig.from_mapping(dict(config))
    deployment_id = deployment_id or config.id
    (directory / "keys").mkdir(parents=True, exist_ok=True)
    (directory / "bundles").mkdir(parents=True, exist_ok=True)

    key_path = directory / "keys" / "reviewer"
    if key_path.exists():
        key = load_private_key(key_path)
    else:
        key = generate_key()
        write_keypair(key, key_path)
    bundle_path = directory / "bundles" / f"{deployment_id}.json"
    sign_config(config, key, reviewer=reviewer, note="written by cosa_guard.testing").save(bundle_path)

    api_key = new_api_key()
    spec: dict[str, Any] = {
        "bundle": str(bundle_path.relative_to(directory)),
        # A deployment serves the config named after it; another id has to be said (config_id).
        **({"config_id": config.id} if deployment_id != config.id else {}),
        "trusted_keys": ["keys/reviewer.pub"],
        "api_keys": [hash_api_key(api_key)],
        "routes": DEFAULT_ROUTES,
        **spec_overrides,
    }
    DeploymentSpec.model_validate(spec)  # fail here, with the field named, rather than at load time

    path = directory / "deployments.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    document = document or {"version": 1, "deployments": {}}
    document["deployments"][deployment_id] = spec
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path, api_key
