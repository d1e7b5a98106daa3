"""What `lint` and `sign` share: the deployment context a config is reviewed against, and its report.

A config is reviewed *for* a deployment: its floor categories and its judge change what lint
says. The context comes from flags (`--floor`, `--judge-kind`) or from the deployment's entry in
a deployments file (`--deployments FILE --deployment ID`), whose bundles need not exist yet.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from cosa_guard.config import SafetyConfig, format_validation_error
from cosa_guard.errors import ConfigError, DeploymentError
from cosa_guard.review import LintReport, lint
from cosa_guard.rules import Rule, config_rules
from cosa_guard.settings import DeploymentsFile, DeploymentSpec
from cosa_guard.taxonomy import CATEGORY_IDS


@dataclass(frozen=True, slots=True)
class ReviewContext:
    floor: tuple[str, ...] = ()
    judge_kind: str | None = None


def add_context_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "deployment context",
        "Lint for the deployment that will serve the config: allowing one of its floor categories\n"
        "is an error, and a free-form config under a category-only judge is a warning.",
    )
    group.add_argument(
        "--floor",
        action="append",
        default=[],
        metavar="CATEGORY",
        help=f"a category no config may unlock; repeatable or comma-separated ({', '.join(CATEGORY_IDS)})",
    )
    group.add_argument(
        "--judge-kind", metavar="KIND", help="the deployment's judge kind (category, llm, composite)"
    )
    group.add_argument(
        "--deployments", type=Path, metavar="FILE", help="read --floor and --judge-kind from this file"
    )
    group.add_argument("--deployment", metavar="ID", help="the deployment in --deployments to lint for")


def context_from_args(args: argparse.Namespace) -> ReviewContext:
    """The floor and judge kind from the flags, merged with the named deployment's entry."""
    floor = parse_floor(args.floor)
    judge_kind = args.judge_kind
    if (args.deployments is None) != (args.deployment is None):
        raise DeploymentError("--deployments FILE and --deployment ID go together; give both or neither")
    if args.deployments is not None:
        spec = _deployment_entry(args.deployments, args.deployment)
        floor |= set(spec.floor)
        judge_kind = judge_kind or spec.judge.kind
    return ReviewContext(tuple(sorted(floor)), judge_kind)


def parse_floor(values: list[str]) -> set[str]:
    """`--floor` values, each possibly comma-separated, as a set of known category ids."""
    floor = {c.strip() for value in values for c in value.split(",") if c.strip()}
    unknown = sorted(floor - set(CATEGORY_IDS))
    if unknown:
        raise ConfigError(f"--floor: unknown categories {unknown}; known: {', '.join(CATEGORY_IDS)}")
    return floor


def _deployment_entry(path: Path, deployment_id: str) -> DeploymentSpec:
    try:
        document = DeploymentsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise DeploymentError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise DeploymentError(f"{path}: bad YAML: {' '.join(str(exc).split())}") from exc
    except ValidationError as exc:
        raise DeploymentError(f"{path}: {format_validation_error(exc)}") from exc
    try:
        return document.deployments[deployment_id]
    except KeyError:
        known = ", ".join(sorted(document.deployments)) or "none"
        raise DeploymentError(f"{path} has no deployment {deployment_id!r} (it has: {known})") from None


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason})") from exc


def lint_source(source: str | Mapping[str, Any], context: ReviewContext) -> LintReport:
    return lint(source, floor=context.floor, judge_kind=context.judge_kind)


def print_issues(path: Path, report: LintReport, stream: TextIO) -> None:
    """Each issue on its own line as `PATH: field: reason`, errors and warnings alike."""
    for issue in report.issues:
        print(f"{path}: {issue}", file=stream)


def print_rules(path: Path, config: SafetyConfig, stream: TextIO) -> None:
    """The config's numbered rules as the reviewer approves them: polarity, categories, exceptions."""
    ruleset = config_rules(config)
    where = "as written in the config" if ruleset.reviewed else "derived from the text, not yet in the config"
    print(f"{path}: {len(ruleset.rules)} rule(s), {where}:", file=stream)
    for rule in ruleset.rules:
        print(f"  {describe_rule(rule)}", file=stream)


def describe_rule(rule: Rule) -> str:
    """One line: `3. forbids [violence] (exception of 2): text`, the text's whitespace collapsed."""
    categories = ", ".join(rule.categories) or "no category"
    exception = f" (exception of {rule.exception_of})" if rule.exception_of is not None else ""
    return f"{rule.number}. {rule.polarity} [{categories}]{exception}: {' '.join(rule.text.split())}"
