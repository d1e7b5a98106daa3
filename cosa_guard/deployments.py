"""Deployments: the server-side binding of a deployment id to a signed config and its guard settings.

A request names a deployment through its credentials (an API key) or its id on a trusted code
path, never through a config: only a signed bundle listed here can change what is allowed.

The YAML file looks like:

    version: 1
    deployments:
      game-studio:
        bundle: bundles/game-studio.json      # relative paths are relative to this file
        pin: sha256:...                        # optional: the exact config hash to accept
        trusted_keys: [keys/alice.pub]         # reviewer public keys
        min_signers: 1
        floor: [sexual]                        # categories no config of this deployment may unlock
        api_keys: [sha256:...]                 # hashes of API keys (cosa-guard keygen --api-key)
        routes:
          primary: {kind: openai, model: cosalign-8b, base_url: http://127.0.0.1:8000/v1}
          fallback: {kind: transformers, model: embedded}
        judge: {kind: category}
        stream: {mode: holdback}
        fail_mode: closed
        deadline_s: 30
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosa_guard.config import SafetyConfig
from cosa_guard.taxonomy import DEFAULT_TAXONOMY, Taxonomy


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackendSpec(_Spec):
    """Which model to call. `kind` names a backend factory (openai, vllm, transformers, langchain, scripted)."""

    kind: str
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, description="environment variable holding the upstream key")
    timeout_s: float = Field(default=60.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class JudgeSpec(_Spec):
    """Which judge checks responses. `kind`: category, llm, composite, scripted."""

    kind: str = "category"
    backend: BackendSpec | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    judges: tuple[JudgeSpec, ...] = ()
    options: dict[str, Any] = Field(default_factory=dict)


class RoutesSpec(_Spec):
    primary: BackendSpec | None = Field(default=None, description="a CoSAlign (config-following) model")
    fallback: BackendSpec | None = Field(default=None, description="the cascade's generator")

    @model_validator(mode="after")
    def _at_least_one(self) -> RoutesSpec:
        if self.primary is None and self.fallback is None:
            raise ValueError("routes needs a primary (CoSAlign) or a fallback (cascade) backend")
        return self


class StreamSpec(_Spec):
    mode: Literal["buffer", "holdback", "optimistic"] = "buffer"
    window_chars: int = Field(default=200, ge=1, description="holdback: judge every this many new characters")
    overlap_chars: int = Field(default=64, ge=0, description="holdback: characters kept back after each verdict")


class BreakerSpec(_Spec):
    failure_threshold: int = Field(default=5, ge=1)
    reset_after_s: float = Field(default=30.0, gt=0)
    slow_call_s: float | None = Field(default=None, gt=0, description="a slower primary call counts as a failure")


class InjectionSpec(_Spec):
    enabled: bool = True
    action: Literal["block", "sanitise", "flag"] = "block"
    threshold: float | None = Field(default=None, ge=0, le=1, description="classifier threshold; None: shipped")
    classifier: bool = True
    system_messages: Literal["drop", "demote", "reject"] = "reject"
    scan_tool_output: bool = True


class AuditSpec(_Spec):
    path: str | None = None
    include_text: bool = False


class CacheSpec(_Spec):
    maxsize: int = Field(default=10_000, ge=0)
    ttl_s: float = Field(default=600.0, gt=0)


class DeploymentSpec(_Spec):
    bundle: str
    pin: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    trusted_keys: tuple[str, ...] = Field(min_length=1)
    min_signers: int = Field(default=1, ge=1)
    floor: tuple[str, ...] = ()
    taxonomy: str | None = Field(default=None, description="alternative category definitions file")
    api_keys: tuple[str, ...] = Field(default=(), description="sha256 hashes of the API keys")
    routes: RoutesSpec
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    judge_cosalign: bool = Field(default=False, description="also judge CoSAlign answers (defence in depth)")
    stream: StreamSpec = Field(default_factory=StreamSpec)
    fail_mode: Literal["closed", "open"] = "closed"
    deadline_s: float = Field(default=30.0, gt=0)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)
    injection: InjectionSpec = Field(default_factory=InjectionSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)


class DeploymentsFile(_Spec):
    version: Literal[1] = 1
    deployments: dict[str, DeploymentSpec]


def hash_api_key(key: str) -> str:
    """How API keys are stored in a deployments file: never in clear."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedDeployment:
    """A deployment whose bundle verified: what the guard serves."""

    id: str
    spec: DeploymentSpec
    config: SafetyConfig
    config_hash: str
    signers: tuple[str, ...] = ()
    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    base_dir: Path = Path(".")

    @property
    def refusal_text(self) -> str:
        return self.config.refusal or DEFAULT_REFUSAL


DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request under this service's safety policy."
