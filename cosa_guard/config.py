"""SafetyConfig: the per-deployment safety policy, and its canonical form and hash.

A config is authored as YAML, reviewed, signed (see `signing`) and loaded by a deployment. Its
canonical JSON (sorted keys, UTF-8, no insignificant whitespace) defines its hash, so key order
and formatting in the YAML never change what is signed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from cosa_guard.errors import ConfigError
from cosa_guard.rules import MAX_RULES, Rule, check_rules
from cosa_guard.taxonomy import ALLOWABLE_IDS, CATEGORY_IDS, OTHER

MAX_TEXT_CHARS = 20_000
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class SafetyConfig(BaseModel):
    """A deployment's safety policy.

    `text` is the free-form policy that goes into the system prompt; `allow` lists the risk
    categories the deployment unlocks (empty: every category stays disallowed). A config with
    only `text` and no `allow` is a *free-form* config; it needs a judge that reads text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    id: str = Field(pattern=ID_PATTERN, description="stable identifier, e.g. 'game-studio'")
    version: int = Field(ge=1, description="increases with every reviewed change")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="free-form policy text")
    allow: tuple[str, ...] = Field(default=(), description="risk category ids this config unlocks")
    refusal: str | None = Field(default=None, max_length=2_000, description="text returned on a refusal")
    expires_at: datetime | None = Field(default=None, description="after this instant the config is rejected")
    description: str = Field(default="", max_length=2_000)
    rules: tuple[Rule, ...] = Field(
        default=(), max_length=MAX_RULES, description="the text's rules as reviewed; empty: derived at load"
    )

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("allow", mode="before")
    @classmethod
    def _allow_is_a_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            raise ValueError("must be a list of category ids, not a string")
        return value

    @field_validator("allow")
    @classmethod
    def _allow_known_and_sorted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if OTHER in value:
            raise ValueError("'other' (Other Harms) can never be allowed")
        unknown = [c for c in value if c not in ALLOWABLE_IDS]
        if unknown:
            raise ValueError(f"unknown risk categories {unknown}; known: {list(CATEGORY_IDS[:-1])}")
        # Sorted and deduplicated so that the order an author wrote them in never changes the hash.
        return tuple(sorted(set(value)))

    @field_validator("expires_at")
    @classmethod
    def _expiry_is_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2027-01-01T00:00:00Z")
        return value

    @field_validator("rules")
    @classmethod
    def _rules_consistent(cls, value: tuple[Rule, ...]) -> tuple[Rule, ...]:
        check_rules(value)
        return value

    @model_serializer(mode="wrap")
    def _omit_empty_rules(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A config without rules serialises as it did before rules existed, so every hash and
        # signature made then stays valid.
        data: dict[str, Any] = handler(self)
        if not self.rules:
            data.pop("rules", None)
        return data

    @property
    def is_free_form(self) -> bool:
        """True when the config gives no category list, only policy text."""
        return not self.allow

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at

    def canonical_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @property
    def hash(self) -> str:
        return content_hash(self.canonical_json())

    @classmethod
    def from_yaml(cls, text: str) -> SafetyConfig:
        """Parse YAML text; raises ConfigError with each field's reason."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"bad YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("a config must be a YAML mapping with id, version, text and allow")
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SafetyConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from exc

    @classmethod
    def load(cls, path: str | Path) -> SafetyConfig:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))


def format_validation_error(exc: ValidationError) -> str:
    """One line per field: `field: reason`."""
    return "; ".join(f"{field}: {msg}" for field, msg in validation_issues(exc))


def validation_issues(exc: ValidationError) -> list[tuple[str, str]]:
    """Each validation error as `(field, reason)`, the pieces `format_validation_error` joins."""
    issues = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(config)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        issues.append((field, msg))
    return issues


def canonical_json(data: Any) -> bytes:
    """The one byte form that is hashed and signed: sorted keys, UTF-8, no insignificant whitespace."""
    return json.dumps(
        data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
