"""Second opinions on compliance: a grader that is not the judge under test.

With `--judge embedded`, the category judge that filters a cascade also grades it, so it can
never see its own misses. A *grader* gives an independent opinion of each answered example
(does the answer comply with its config?) so the report can say how far the evaluation judge
agrees with it (`agreement.py`):

* `JudgeGrader`: any of the guard's judge kinds (`rules`, `llm`, `category`, ...) used only to
  grade, e.g. the rule judge grading a deployment whose cascade uses the category judge;
* `HumanLabels`: a JSON Lines file of human labels, one `{"id", "complies"}` per example, with
  optional `target` (the run's name, when the labels are for one run's answers) and `response`
  (the answer that was labelled: a label is not applied to a different answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosa_guard.config import SafetyConfig, format_validation_error
from cosa_guard.errors import ConfigError, JudgeError
from cosa_guard.judges.base import Judge
from cosa_guard.settings import JudgeSpec
from cosa_guard.types import Message


class Grader(Protocol):
    """Says whether an answer complies with its config; None when it cannot tell (left out of agreement)."""

    name: str

    async def complies(self, config: SafetyConfig, prompt: str, response: str) -> bool | None: ...


def judge_spec(text: str) -> JudgeSpec:
    """A judge kind (`rules`) or a whole judge spec as JSON (`{"kind": "category", "threshold": 0.7}`)."""
    text = text.strip()
    if not text.startswith("{"):
        return JudgeSpec(kind=text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"judge spec is not valid JSON: {exc.msg} at column {exc.colno}") from exc
    try:
        return JudgeSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"judge spec: {format_validation_error(exc)}") from exc


class JudgeGrader:
    """A guard judge's `Verdict.complies` as a grade; a JudgeError is no grade (None), never a pass."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.name = judge.name

    async def complies(self, config: SafetyConfig, prompt: str, response: str) -> bool | None:
        try:
            verdict = await self.judge.judge(config, (Message("user", prompt),), response)
        except JudgeError:
            return None
        return verdict.complies


class _LabelRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1)
    complies: bool
    target: str | None = None
    response: str | None = None


@dataclass(frozen=True, slots=True)
class HumanLabels:
    """Human compliance labels by example id (and, where given, by run name)."""

    name: str
    rows: tuple[_LabelRow, ...]

    @classmethod
    def load(cls, path: Path) -> HumanLabels:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the labels file {path}: {exc.strerror or exc}") from exc
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(_LabelRow.model_validate(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            except ValidationError as exc:
                raise ConfigError(f"{path}:{number}: {format_validation_error(exc)}") from exc
        keys = [(r.target, r.id) for r in rows]
        twice = sorted({f"{t or '*'}/{i}" for t, i in keys if keys.count((t, i)) > 1})
        if twice:
            raise ConfigError(f"{path}: labelled twice: {twice}")
        return cls(f"labels:{path.name}", tuple(rows))

    def label(self, target: str, example_id: str, response: str) -> bool | None:
        """This run's label for this example; None when there is none or it labels another answer."""
        for_target = [r for r in self.rows if r.id == example_id and r.target == target]
        candidates = for_target or [r for r in self.rows if r.id == example_id and r.target is None]
        for row in candidates:
            if row.response is None or row.response.strip() == response.strip():
                return row.complies
        return None
