"""Building a deployment's judge from its `JudgeSpec`.

Kinds:

- `category` (default): the trained category judge that ships with the package
  (`cosa_guard.judges.category.CategoryJudge.load()`); `threshold` and `options` are passed on
  (`path`, relative to the deployments file, loads other weights).
- `rules`: the rule judge (`cosa_guard.judges.rules.RuleJudge.load()`): the answer judged against
  each of the config's rules, with the shipped category judge as the floor. Options: `path` (rule
  judge weights) and `category_path` (category judge weights), both relative to the deployments
  file; `floor`. Its thresholds ship with the weights, so `threshold` is refused.
- `llm`: `LLMJudge` over the backend in `backend` (any chat model; logprob scoring where the
  backend offers it). Options: `max_tokens`.
- `composite`: every judge in `judges`; any violation wins. Options: `tolerate_failures`.
- `scripted`: `ScriptedJudge` for tests and demos. Options: `flags` (marker -> category),
  `fail` (every call raises JudgeError with this message), `delay_s`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from cosa_guard.backends.base import Backend
from cosa_guard.errors import ConfigError, JudgeError
from cosa_guard.judges.base import Judge
from cosa_guard.judges.composite import CompositeJudge
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.judges.llm import LLMJudge
from cosa_guard.settings import BackendSpec, JudgeSpec

BackendFactory = Callable[[BackendSpec, Path], Backend]
KINDS = ("category", "rules", "llm", "composite", "scripted")


def _import_part(module: str, missing: str) -> ModuleType:
    """A part of cosa_guard imported on first use; ConfigError(`missing`) when this install lacks it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # the module is there but one of its own imports is broken: show that
        raise ConfigError(missing) from exc


def default_backend_factory(spec: BackendSpec, base_dir: Path) -> Backend:
    """`cosa_guard.backends.factory.build_backend`, imported when first needed."""
    module = _import_part(
        "cosa_guard.backends.factory",
        f"cannot build a {spec.kind!r} backend: cosa_guard.backends.factory is not available in this "
        "installation; pass Guard(backend_factory=...) or Guard.single(...) with backend objects",
    )
    backend: Backend = module.build_backend(spec, base_dir)
    return backend


def build_judge(spec: JudgeSpec, base_dir: Path, *, backend_factory: BackendFactory | None = None) -> Judge:
    """The judge `spec` describes; ConfigError (saying what to change) when it cannot be built."""
    make_backend = backend_factory or default_backend_factory
    options = dict(spec.options)
    if spec.kind == "category":
        return _category_judge(spec, options, base_dir)
    if spec.kind == "rules":
        return _rules_judge(spec, options, base_dir)
    if spec.kind == "llm":
        if spec.backend is None:
            raise ConfigError("judge kind 'llm' needs a `backend` (the model that judges)")
        threshold = 0.5 if spec.threshold is None else spec.threshold
        return LLMJudge(make_backend(spec.backend, base_dir), threshold=threshold, **options)
    if spec.kind == "composite":
        if not spec.judges:
            raise ConfigError("judge kind 'composite' needs at least one judge in `judges`")
        members = [build_judge(j, base_dir, backend_factory=make_backend) for j in spec.judges]
        return CompositeJudge(members, tolerate_failures=bool(options.get("tolerate_failures", False)))
    if spec.kind == "scripted":
        fail = options.get("fail")
        return ScriptedJudge(
            [JudgeError(str(fail))] if fail else (),
            flags=options.get("flags"),
            delay=float(options.get("delay_s", 0.0)),
        )
    raise ConfigError(f"unknown judge kind {spec.kind!r}; use one of {', '.join(KINDS)}")


def _beside_deployments(options: dict[str, Any], base_dir: Path, *keys: str) -> None:
    """Weight paths among `keys` (the operator's own training runs) made relative to the deployments file."""
    for key in keys:
        if key in options:
            options[key] = base_dir / Path(str(options[key])).expanduser()


def _category_judge(spec: JudgeSpec, options: dict[str, Any], base_dir: Path) -> Judge:
    module = _import_part(
        "cosa_guard.judges.category",
        "judge kind 'category' needs cosa_guard.judges.category, which this installation lacks; "
        "use judge kind 'llm' with a judge backend, or install a cosa-guard release that ships it",
    )
    if spec.threshold is not None:
        options["threshold"] = spec.threshold
    _beside_deployments(options, base_dir, "path")
    judge: Judge = module.CategoryJudge.load(**options)
    return judge


def _rules_judge(spec: JudgeSpec, options: dict[str, Any], base_dir: Path) -> Judge:
    module = _import_part(
        "cosa_guard.judges.rules",
        "judge kind 'rules' needs cosa_guard.judges.rules, which this installation lacks; "
        "use judge kind 'category' or 'llm'",
    )
    if spec.threshold is not None:
        raise ConfigError(
            "judge kind 'rules' takes no `threshold`: its thresholds are calibrated and ship with its weights"
        )
    _beside_deployments(options, base_dir, "path", "category_path")
    judge: Judge = module.RuleJudge.load(**options)
    return judge
