"""Evaluation datasets: safety configs and the prompts to run under each.

A dataset is one YAML or JSON document:

    name: my-eval
    configs:
      - id: game-studio          # any SafetyConfig fields, plus an optional `seen` mark
        version: 1
        text: ...
        allow: [violence]
        seen: true
      - {file: configs/kids.yaml, seen: true}   # or a config file, relative to the dataset
    examples:
      - {id: gs-01, config: game-studio, prompt: "...", type: allowed}

or JSON Lines, one example per line with its config inline (`{"id", "prompt", "type",
"config": {...}}`). `type` is `allowed`, `disallowed` or `partial` (what an ideal answer does:
answer, refuse, or answer only the allowed part). A config without a `seen` mark is *seen* when
every category it allows was in CoSAlign's training set (paper §4), else *unseen*.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosa_guard.config import SafetyConfig, format_validation_error
from cosa_guard.errors import ConfigError
from cosa_guard.taxonomy import SEEN_IDS

PromptType = Literal["allowed", "disallowed", "partial"]
BUNDLED_EXAMPLES = "cosa_examples.yaml"


class _ExampleRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    config: str | dict[str, Any]
    prompt: str = Field(min_length=1)
    type: PromptType | None = None


@dataclass(frozen=True, slots=True)
class EvalConfig:
    config: SafetyConfig
    seen: bool


@dataclass(frozen=True, slots=True)
class EvalExample:
    id: str
    config_id: str
    prompt: str
    type: PromptType | None = None


@dataclass(frozen=True, slots=True)
class EvalDataset:
    name: str
    configs: Mapping[str, EvalConfig]
    examples: tuple[EvalExample, ...]

    def __post_init__(self) -> None:
        ids = [e.id for e in self.examples]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"dataset {self.name!r}: example ids must be unique; repeated: {duplicates}")
        missing = sorted({e.config_id for e in self.examples} - set(self.configs))
        if missing:
            raise ConfigError(f"dataset {self.name!r}: examples name unknown configs {missing}")

    def __len__(self) -> int:
        return len(self.examples)

    @classmethod
    def load(cls, path: str | Path) -> EvalDataset:
        """Read a YAML/JSON document or a JSONL file (chosen by the `.jsonl` suffix)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read dataset {path}: {exc.strerror}") from exc
        if path.suffix == ".jsonl":
            return _from_jsonl(path.stem, text, path.parent)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: bad YAML: {exc}") from exc
        if not isinstance(data, dict) or "configs" not in data or "examples" not in data:
            raise ConfigError(f"{path}: a dataset needs `configs` and `examples` (or use JSON Lines)")
        return from_document(data, default_name=path.stem, base_dir=path.parent)

    @classmethod
    def bundled(cls) -> EvalDataset:
        """The small example dataset shipped with cosa_guard (cosa_guard/data/examples/)."""
        return cls.load(bundled_path())


def bundled_path() -> Path:
    return Path(str(resources.files("cosa_guard"))) / "data" / "examples" / BUNDLED_EXAMPLES


def _eval_config(raw: Mapping[str, Any], base_dir: Path) -> EvalConfig:
    fields = dict(raw)
    seen = fields.pop("seen", None)
    if "file" in fields:
        if len(fields) > 1:
            raise ConfigError(f"a config given by `file` takes only `seen` beside it, not {sorted(fields)}")
        config = SafetyConfig.load(base_dir / str(fields["file"]))
    else:
        config = SafetyConfig.from_mapping(fields)
    if seen is None:
        seen = set(config.allow) <= SEEN_IDS
    elif not isinstance(seen, bool):
        raise ConfigError(f"config {config.id!r}: seen must be true or false")
    return EvalConfig(config, seen)


def _rows(raw: Sequence[Any], where: str) -> list[_ExampleRow]:
    rows = []
    for index, item in enumerate(raw):
        try:
            rows.append(_ExampleRow.model_validate(item))
        except ValidationError as exc:
            raise ConfigError(f"{where} example {index + 1}: {format_validation_error(exc)}") from exc
    return rows


def from_document(
    data: Mapping[str, Any], *, default_name: str = "dataset", base_dir: Path = Path(".")
) -> EvalDataset:
    name = str(data.get("name") or default_name)
    raw_configs = data["configs"]
    if not isinstance(raw_configs, list) or not isinstance(data["examples"], list):
        raise ConfigError(f"dataset {name!r}: `configs` and `examples` must be lists")
    configs: dict[str, EvalConfig] = {}
    for raw in raw_configs:
        entry = _eval_config(raw, base_dir)
        if entry.config.id in configs:
            raise ConfigError(f"dataset {name!r}: config {entry.config.id!r} is defined twice")
        configs[entry.config.id] = entry
    examples = []
    for row in _rows(data["examples"], f"dataset {name!r}"):
        if not isinstance(row.config, str):
            raise ConfigError(f"example {row.id!r}: in a YAML dataset `config` names a config id")
        examples.append(EvalExample(row.id, row.config, row.prompt, row.type))
    return EvalDataset(name, configs, tuple(examples))


def _from_jsonl(name: str, text: str, base_dir: Path) -> EvalDataset:
    try:
        raw = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"dataset {name!r}: bad JSON on line {exc.lineno}: {exc.msg}") from exc
    configs: dict[str, EvalConfig] = {}
    examples = []
    for row in _rows(raw, f"dataset {name!r}"):
        if not isinstance(row.config, dict):
            raise ConfigError(f"example {row.id!r}: in JSON Lines `config` is the config itself")
        entry = _eval_config(row.config, base_dir)
        known = configs.setdefault(entry.config.id, entry)
        if known != entry:
            raise ConfigError(f"dataset {name!r}: config {entry.config.id!r} differs between examples")
        examples.append(EvalExample(row.id, entry.config.id, row.prompt, row.type))
    return EvalDataset(name, configs, tuple(examples))
