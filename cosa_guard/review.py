"""Review of a safety config before it is signed: lint, and the review record a bundle carries.

`lint` reads the YAML an author wrote (or an already parsed mapping) and reports every problem
as `field: reason`, so a reviewer sees all of them at once instead of the first one:

    report = lint(Path("game-studio.yaml").read_text(), floor=["sexual"], judge_kind="category")
    for issue in report.issues:
        print(issue)                      # "allow: 'sexual' is a floor category ..."
    report.ok                             # False when any issue is an error

Field rules (ids, version, size, known categories, `other`) come from `SafetyConfig` itself;
lint adds what depends on the deployment (floor categories, the judge that will read the config)
and what a validator cannot judge alone: policy text that looks like a prompt injection, which
would reach the model's system prompt with the deployment's full authority.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosa_guard.config import SafetyConfig, validation_issues
from cosa_guard.normalise import normalise
from cosa_guard.rules import MAX_RULES, config_rules, derive_rules

Severity = Literal["error", "warning"]

# Signals of the normaliser that mean characters a reviewer cannot see.
_HIDDEN_SIGNALS = frozenset({"zero_width", "bidi_override", "tag_chars", "variation_selectors"})

# Fields whose text reaches a model or a user; each is scanned for injection-like content.
_SCANNED_FIELDS = ("text", "refusal", "description")

# Each pattern names why the text would confuse a model reading it as its system prompt.
_INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a chat-template token",
        re.compile(
            r"<\|[a-z_]{2,40}\|>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>",
            re.IGNORECASE,
        ),
    ),
    (
        "a role marker at the start of a line",
        re.compile(
            r"^[ \t#>*]*(?:system|assistant|user|developer|tool)[ \t]*:", re.IGNORECASE | re.MULTILINE
        ),
    ),
    (
        "an instruction to ignore other instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?"
            r"\b(?:previous|prior|above|earlier|preceding|all|any|other)\b[^.\n]{0,20}?"
            r"\b(?:instructions?|rules|guidelines|polic(?:y|ies)|configs?|prompts?)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "a fake config block",
        re.compile(
            r"\b(?:new|updated|override|begin|end)[ \t]+"
            r"(?:safety[ \t]+(?:config(?:uration)?|policy)|config(?:uration)?)\b"
            r"|^[ \t]*(?:safety[ \t]+guideline|safety[ \t]+config(?:uration)?)[ \t]*:"
            r"|^[ \t]*(?:allow|allowed_categories|expires_at)[ \t]*:"
            r"|^[ \t]*```",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class LintIssue:
    field: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        suffix = " (warning)" if self.severity == "warning" else ""
        return f"{self.field}: {self.message}{suffix}"


@dataclass(frozen=True, slots=True)
class LintReport:
    issues: tuple[LintIssue, ...] = ()
    config: SafetyConfig | None = None  # None when the config did not validate

    @property
    def errors(self) -> tuple[LintIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[LintIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """What the review record keeps: counts and the warnings the reviewer accepted."""
        return {"errors": len(self.errors), "warnings": [str(i) for i in self.warnings]}


class ReviewRecord(BaseModel):
    """Who reviewed a config, when, what lint said and why they approved it. Signed with the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reviewer: str = Field(min_length=1, max_length=200)
    reviewed_at: datetime
    lint: dict[str, Any] = Field(default_factory=dict)
    note: str = Field(default="", max_length=2_000)


def lint(
    source: str | Mapping[str, Any],
    floor: Iterable[str] = (),
    judge_kind: str | None = None,
    now: datetime | None = None,
) -> LintReport:
    """Every problem with a config, as errors (it must not be signed) and warnings (a reviewer decides).

    `source` is YAML text or a mapping. `floor` lists categories the target deployment never
    unlocks; `judge_kind` is the deployment's judge (`category` reads only categories).
    """
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            return LintReport((LintIssue("(yaml)", f"bad YAML: {' '.join(str(exc).split())}"),))
    else:
        data = source
    if not isinstance(data, Mapping):
        return LintReport(
            (LintIssue("(config)", "a config must be a mapping with id, version, text and allow"),)
        )

    issues: list[LintIssue] = []
    config: SafetyConfig | None = None
    try:
        config = SafetyConfig.model_validate(dict(data))
    except ValidationError as exc:
        issues.extend(LintIssue(field, reason) for field, reason in validation_issues(exc))

    allow = data.get("allow") or ()
    if isinstance(allow, (list, tuple)):
        floor_set = set(floor)
        for category in sorted({c for c in allow if isinstance(c, str)} & floor_set):
            issues.append(
                LintIssue(
                    "allow",
                    f"{category!r} is a floor category of this deployment, which no config may unlock",
                )
            )

    for field in _SCANNED_FIELDS:
        value = data.get(field)
        if isinstance(value, str):
            issues.extend(_injection_issues(field, value))

    if config is not None:
        if config.is_expired(now or datetime.now(UTC)):
            issues.append(
                LintIssue(
                    "expires_at",
                    f"the config expired at {config.expires_at:%Y-%m-%dT%H:%M:%SZ}; set a later expiry",
                )
            )
        if config.is_free_form and judge_kind == "category":
            issues.append(
                LintIssue(
                    "allow",
                    "free-form config (no allow list) with judge kind 'category', which reads only "
                    "categories and ignores the policy text; use judge kind 'llm'",
                    "warning",
                )
            )
        issues.extend(_rule_issues(config))
    return LintReport(tuple(issues), config)


def _rule_issues(config: SafetyConfig) -> list[LintIssue]:
    """Warnings on the rules about to be signed: what no category covers, what contradicts `allow`."""
    field = "rules" if config.rules else "text"
    rules = config_rules(config).rules
    warnings = []
    if not rules:
        warnings.append("the text yields no rule (nothing in it allows or forbids); only `allow` is enforced")
    derived = 0 if config.rules else len(derive_rules(config.text, config.allow))
    if derived > MAX_RULES:
        warnings.append(
            f"the text yields {derived} rules; only the first {MAX_RULES} are enforced: shorten it or "
            "write `rules` by hand"
        )
    allowed = set(config.allow)
    for rule in rules:
        unlocked = [c for c in rule.categories if c in allowed]
        if not rule.categories:
            warnings.append(
                f"rule {rule.number} maps to no risk category: only a judge that reads text enforces it; "
                "set its categories if one applies"
            )
        elif rule.polarity == "allows" and len(unlocked) < len(rule.categories):
            locked = ", ".join(c for c in rule.categories if c not in allowed)
            warnings.append(
                f"rule {rule.number} allows {locked}, which `allow` does not unlock (a category judge "
                "refuses it): add it to `allow` or edit the rule"
            )
        elif rule.polarity == "forbids" and rule.exception_of is None and unlocked:
            warnings.append(
                f"rule {rule.number} forbids {', '.join(unlocked)}, which `allow` unlocks, and is no "
                "exception of an allowing rule: set its exception_of or take the category off `allow`"
            )
    return [LintIssue(field, message, "warning") for message in warnings]


def _injection_issues(field: str, text: str) -> list[LintIssue]:
    """Injection-like content, read through the same normaliser the input guard uses.

    Invisible characters are errors in themselves: a reviewer approves what they see, and a
    zero-width space or a tag character carries text they cannot see into the system prompt.
    """
    normalised = normalise(text)
    issues = []
    hidden = sorted({s.kind for s in normalised.signals if s.kind in _HIDDEN_SIGNALS})
    if hidden:
        what = ", ".join(hidden)
        issues.append(
            LintIssue(field, f"contains invisible characters ({what}) a reviewer cannot see; remove them")
        )
    if any(s.kind == "mixed_script" for s in normalised.signals):
        look_alike = "mixes look-alike letters of different scripts inside a word; check it"
        issues.append(LintIssue(field, look_alike, "warning"))
    readings = [("", normalised.text)] + [(f" in a {v.kind} stretch", v.text) for v in normalised.views]
    for why, pattern in _INJECTION_PATTERNS:
        for where, reading in readings:
            match = pattern.search(reading)
            if match:
                snippet = " ".join(match.group(0).split())[:40]
                reason = (
                    f"looks like a prompt injection ({why}{where}: {snippet!r}); rephrase it as plain policy"
                )
                issues.append(LintIssue(field, reason))
                break
    return issues


def is_deployable(
    source: str | Mapping[str, Any], floor: Iterable[str] = (), now: datetime | None = None
) -> bool:
    """True when lint finds no error: the config may be signed (warnings are the reviewer's call)."""
    return lint(source, floor=floor, now=now).ok
