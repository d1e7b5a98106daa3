"""A config's rules: its free-form text split into numbered, reviewable statements.

CoSA configs are prose. To enforce the prose (not only the `allow` list) the text is split into
rules, each with a polarity (the rule allows or forbids something), the risk categories it
concerns and, for an exception ("violence is allowed, except severed limbs"), the number of the
rule it narrows. `cosa-guard lint` shows the rules to the reviewer, `sign` signs them with the
config, and the rule judge (`cosa_guard.judges.rules`) judges an answer against each of them.
A config signed before rules existed has its rules derived at load and flagged as unreviewed.

Shared interface (issue 19): `Rule` and `RuleSet` are the contract between the rule parser,
signing, the rule judge and the decision. Keep their fields stable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Polarity = Literal["allows", "forbids"]
MAX_RULES = 64


class Rule(BaseModel):
    """One statement of a config's policy text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1, description="1-based position, shown to reviewers and in decisions")
    text: str = Field(min_length=1, max_length=2_000, description="the rule as the reviewer approved it")
    polarity: Polarity
    categories: tuple[str, ...] = Field(default=(), description="risk category ids the rule concerns")
    exception_of: int | None = Field(default=None, description="the rule this one narrows, if any")


class RuleSet(BaseModel):
    """A config's rules and whether a reviewer signed them (False: derived from the text at load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[Rule, ...] = Field(default=(), max_length=MAX_RULES)
    reviewed: bool = False


def config_rules(config: object) -> RuleSet:
    """Placeholder until the `rules` branch lands (its version replaces this on merge)."""
    return RuleSet()
