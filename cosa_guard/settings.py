"""Settings: the shape of a deployments file, as frozen pydantic models with no behaviour of their own.

The ground floor of the package: backends, judges, injection, cache, limits and routing read their
settings from these models, while `cosa_guard.deployments` reads the YAML, verifies each bundle and
serves the result. This module imports nothing else of cosa_guard, so any layer may use it.

A deployments file looks like:

    version: 1
    deployments:
      game-studio:
        bundle: bundles/game-studio.json      # relative paths are relative to this file
        config_id: game-studio                 # optional: the config id it serves (default: its own id)
        pin: sha256:...                        # optional: the exact config hash to accept
        allow_downgrade: false                 # true: a reload may go back to a lower config version
        trusted_keys: [keys/alice.pub]         # reviewer public keys
        min_signers: 1
        floor: [sexual]                        # categories no config of this deployment may unlock
        api_keys: [sha256:...]                 # hashes of API keys (cosa-guard keygen --api-key)
        routes:
          primary: {kind: openai, model: cosalign-8b, base_url: http://127.0.0.1:8000/v1}
          fallback: {kind: onnx, model: embedded}
        judge: {kind: category}
        stream: {mode: holdback}
        fail_mode: closed
        deadline_s: 30
        limits: {max_turn_chars: 100000, max_request_chars: 400000, max_concurrency_per_key: 128}
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackendSpec(_Spec):
    """Which model to call.

    `kind` names a backend factory (openai, vllm, transformers, onnx, langchain, scripted).
    """

    kind: str
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, description="environment variable holding the upstream key")
    timeout_s: float = Field(default=60.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class JudgeSpec(_Spec):
    """Which judge checks responses. `kind`: category, rules, llm, composite, scripted."""

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
    overlap_chars: int = Field(
        default=64, ge=0, description="holdback: characters kept back after each verdict"
    )


class BreakerSpec(_Spec):
    failure_threshold: int = Field(default=5, ge=1)
    reset_after_s: float = Field(default=30.0, gt=0)
    slow_call_s: float | None = Field(
        default=None, gt=0, description="a slower primary call counts as a failure"
    )


# What the guard does with client system (and developer) messages; see cosa_guard.privilege.
SystemMessagePolicy = Literal["instruct", "drop", "demote", "reject"]


class InjectionSpec(_Spec):
    enabled: bool = True
    action: Literal["block", "sanitise", "flag"] = "block"
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="classifier threshold; None: shipped"
    )
    classifier: bool = True
    system_messages: SystemMessagePolicy = Field(
        default="instruct",
        description="instruct: the app's instructions, under the config; drop; demote to a user turn; reject",
    )
    scan_tool_output: bool = True


class AuditSpec(_Spec):
    path: str | None = None
    include_text: bool = False
    required: bool = Field(
        default=False, description="refuse calls (503) while the audit log cannot be written"
    )

    @model_validator(mode="after")
    def _required_needs_a_file(self) -> AuditSpec:
        if self.required and self.path is None:
            raise ValueError("required: true needs a path: the audit log that must be writable")
        return self


class CacheSpec(_Spec):
    maxsize: int = Field(default=10_000, ge=0)
    ttl_s: float = Field(default=600.0, gt=0)


class LimitsSpec(_Spec):
    """What one request (and one API key) may ask of the server. Defaults a real chat never reaches."""

    max_turn_chars: int = Field(default=100_000, ge=1, description="characters in one message")
    max_request_chars: int = Field(default=400_000, ge=1, description="characters in all messages together")
    max_concurrency_per_key: int | None = Field(
        default=128, ge=1, description="server: calls one API key may have in flight (None: no limit)"
    )
    max_answer_chars: int = Field(
        default=100_000, ge=1, description="a longer model answer is a backend failure, never returned"
    )


class DeploymentSpec(_Spec):
    bundle: str
    config_id: str | None = Field(
        default=None, description="the id the bundle's config must have; None: the deployment's own id"
    )
    pin: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    allow_downgrade: bool = Field(
        default=False, description="let a reload replace the serving config with a lower version"
    )
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
    limits: LimitsSpec = Field(default_factory=LimitsSpec)


class DeploymentsFile(_Spec):
    version: Literal[1] = 1
    deployments: dict[str, DeploymentSpec]


def new_api_key() -> str:
    """A fresh random API key (256 bits), the kind `cosa-guard keygen --api-key` prints."""
    return "cg-" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """How API keys are stored in a deployments file: never in clear."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
