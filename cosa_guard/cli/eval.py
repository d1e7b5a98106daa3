"""`cosa-guard eval`: CoSA-Score of a guarded deployment over a dataset of configs and prompts."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosa_guard.deployments import LoadedDeployment
    from cosa_guard.evaluation.dataset import EvalDataset
    from cosa_guard.evaluation.graders import JudgeGrader
    from cosa_guard.evaluation.judges import EvalJudge
    from cosa_guard.evaluation.runner import RunResult
    from cosa_guard.evaluation.targets import GuardTarget, SharedBackends

DESCRIPTION = """\
Run every (config, prompt) example of a dataset through a guarded deployment, judge each answer
and compute CoSA-Score as the CoSA paper defines it: helpfulness (0-5, scaled to 0-1) times +1
when the answer stays inside the config and -1 when it does not, a refusal scoring 0; averaged
per config, then macro-averaged over configs, for seen and unseen configs apart.

  cosa-guard eval --out runs/demo                       the demo deployment, bundled dataset
  cosa-guard eval --deployments deployments.yaml --deployment game-studio \\
      --dataset my-eval.yaml --baseline ica --out runs/gs
  cosa-guard eval ... --judge llm --judge-base-url http://127.0.0.1:8000/v1 --judge-model M

The deployment keeps its routes, judge, floor and guard settings; each dataset config is swapped
in turn, in memory (nothing is signed or served). --baseline ica adds the paper's baseline: the
deployment's cascade model with the config in its system prompt and no judge.

Judges: `embedded` (default) needs no network: a refusal detector for helpfulness and the
trained category judge for risk categories; its limits are printed in the report. `llm` asks a
strong chat model behind any OpenAI-compatible endpoint both of the paper's rubrics.

A judge that also guards the deployment grades its own filter. --grader (another judge kind,
e.g. `rules`) and --labels (a JSONL file of human labels) add opinions that are not the judge
under test; the report gives their agreement with it (raw and Cohen's kappa):

  cosa-guard eval --grader rules --labels my-labels.jsonl --out runs/demo

Output in --out: one JSONL file of judged answers per run (an interrupted run resumes where it
stopped; --restart discards them), result.json, report.md and PNG plots.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure how well a deployment follows its configs (CoSA-Score report with plots)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset", type=Path, metavar="FILE", help="YAML/JSON/JSONL dataset (default: bundled)"
    )
    parser.add_argument(
        "--deployments", type=Path, metavar="FILE", help="deployments.yaml (default: the demo deployment)"
    )
    parser.add_argument(
        "--deployment",
        action="append",
        metavar="ID",
        help="deployment to evaluate; repeat for several (default: every deployment in FILE)",
    )
    parser.add_argument("--baseline", choices=["ica"], help="also run the ICA baseline of each deployment")
    judge = parser.add_argument_group("judge")
    judge.add_argument("--judge", choices=["embedded", "llm"], default="embedded", help="default: embedded")
    judge.add_argument("--judge-base-url", metavar="URL", help="llm: the OpenAI-compatible endpoint")
    judge.add_argument("--judge-model", metavar="M", help="llm: the judge model's name at that endpoint")
    judge.add_argument(
        "--judge-api-key-env", metavar="VAR", help="llm: environment variable holding the endpoint's API key"
    )
    judge.add_argument(
        "--judge-backend",
        metavar="JSON",
        help='llm: the judge model as a backend spec instead, e.g. \'{"kind": "vllm", "model": "/m"}\'',
    )
    judge.add_argument(
        "--category-judge",
        metavar="JSON",
        default='{"kind": "category"}',
        help="embedded: the judge spec that finds risk categories (default: the trained category judge)",
    )
    graders = parser.add_argument_group("independent graders (agreement with the judge)")
    graders.add_argument(
        "--grader",
        metavar="SPEC",
        help="a judge kind (rules, category, ...) or judge spec JSON that grades every answer as well",
    )
    graders.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help='human labels: JSON Lines of {"id", "complies"}, optionally "target" (run) and "response"',
    )
    parser.add_argument(
        "--concurrency", type=_positive, default=4, metavar="N", help="examples in flight (default 4)"
    )
    parser.add_argument(
        "--max-tokens",
        type=_positive,
        metavar="N",
        help="cap each answer at N tokens (default: the backend's own; a CPU model is much faster capped)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where results and the report go"
    )
    parser.add_argument(
        "--restart", action="store_true", help="discard answers already in DIR instead of resuming"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from cosa_guard.cli._guarded import resolve
    from cosa_guard.deployments import DeploymentRegistry
    from cosa_guard.evaluation.dataset import EvalDataset

    dataset = EvalDataset.load(args.dataset) if args.dataset else EvalDataset.bundled()
    source = resolve(args.deployments)
    registry = DeploymentRegistry.load(source.path)
    deployments = [registry.get(i) for i in args.deployment or registry.ids()]
    return asyncio.run(_main(args, dataset, deployments, source.path.parent))


async def _main(
    args: argparse.Namespace, dataset: EvalDataset, deployments: list[LoadedDeployment], base_dir: Path
) -> int:
    from cosa_guard.evaluation.graders import HumanLabels
    from cosa_guard.evaluation.report import build_result, write_report
    from cosa_guard.evaluation.targets import SharedBackends

    backends = SharedBackends()
    judge = _eval_judge(args, deployments, dataset, backends, base_dir)
    grader = _grader(args.grader, backends, base_dir) if args.grader else None
    labels = HumanLabels.load(args.labels) if args.labels else None
    targets = _targets(args, deployments, dataset, backends)
    runs: list[tuple[RunResult, str]] = []
    try:
        for target in targets:
            await target.guard.warm_up()  # the local models load before the progress bars start
        for target in targets:
            runs.append((await _run_one(args, dataset, target, judge, grader), target.description))
    finally:
        for target in targets:
            await target.aclose()
    result = build_result(dataset, runs, judge, grader=grader.name if grader else None, labels=labels)
    files = write_report(result, args.out, plots=not args.no_plots)
    _print_summary(files.json)
    print(f"report: {files.markdown}")
    return 0 if all(r.errors == 0 for r, _ in runs) else 1


def _targets(
    args: argparse.Namespace,
    deployments: list[LoadedDeployment],
    dataset: EvalDataset,
    backends: SharedBackends,
) -> list[GuardTarget]:
    from cosa_guard.evaluation.targets import describe, ica_baseline, per_config_guard
    from cosa_guard.types import GenerationParams

    params = GenerationParams(max_tokens=args.max_tokens or None)
    targets = []
    for deployment in deployments:
        if args.baseline == "ica":
            baseline = ica_baseline(deployment)
            targets.append(
                per_config_guard(
                    baseline,
                    dataset,
                    name=f"{deployment.id} ICA",
                    backends=backends,
                    description=f"ICA baseline: {describe(baseline)}, config in the system prompt",
                    params=params,
                )
            )
        targets.append(
            per_config_guard(
                deployment,
                dataset,
                name=deployment.id,
                backends=backends,
                description=describe(deployment),
                params=params,
            )
        )
    return targets


def _eval_judge(
    args: argparse.Namespace,
    deployments: list[LoadedDeployment],
    dataset: EvalDataset,
    backends: SharedBackends,
    base_dir: Path,
) -> EvalJudge:
    from cosa_guard.deployments import DEFAULT_REFUSAL
    from cosa_guard.errors import ConfigError
    from cosa_guard.evaluation.judges import (
        EMBEDDED_CATEGORY_LIMITS,
        OTHER_CATEGORY_LIMITS,
        embedded_eval_judge,
        llm_eval_judge,
    )
    from cosa_guard.judges.factory import build_judge
    from cosa_guard.settings import BackendSpec, JudgeSpec

    if args.judge == "llm":
        if args.judge_backend:
            spec = BackendSpec.model_validate(_json_option("--judge-backend", args.judge_backend))
        elif args.judge_base_url and args.judge_model:
            spec = BackendSpec(
                kind="openai",
                model=args.judge_model,
                base_url=args.judge_base_url,
                api_key_env=args.judge_api_key_env,
            )
        else:
            raise ConfigError("--judge llm needs --judge-base-url and --judge-model (or --judge-backend)")
        return llm_eval_judge(backends(spec, base_dir))
    judge_spec = JudgeSpec.model_validate(_json_option("--category-judge", args.category_judge))
    refusals = {DEFAULT_REFUSAL, *(e.config.refusal for e in dataset.configs.values() if e.config.refusal)}
    refusals |= {d.refusal_text for d in deployments}
    try:
        categories = build_judge(judge_spec, base_dir, backend_factory=backends)
    except (OSError, ConfigError) as exc:  # e.g. the category judge or its weights are not installed
        raise ConfigError(
            f"cannot load the {judge_spec.kind} judge for risk categories: {exc}. Use --judge llm with a "
            "strong model, or --category-judge with another judge spec"
        ) from exc
    limits = EMBEDDED_CATEGORY_LIMITS if judge_spec.kind == "category" else None
    return embedded_eval_judge(
        categories,
        sorted(refusals),
        category_limits=limits or OTHER_CATEGORY_LIMITS.format(kind=judge_spec.kind),
    )


def _grader(spec_text: str, backends: SharedBackends, base_dir: Path) -> JudgeGrader:
    from cosa_guard.errors import ConfigError
    from cosa_guard.evaluation.graders import JudgeGrader, judge_spec
    from cosa_guard.judges.factory import build_judge

    spec = judge_spec(spec_text)
    try:
        return JudgeGrader(build_judge(spec, base_dir, backend_factory=backends))
    except (OSError, ConfigError) as exc:
        raise ConfigError(f"--grader: cannot load the {spec.kind!r} judge: {exc}") from exc


def _json_option(flag: str, value: str) -> Any:
    from cosa_guard.errors import ConfigError

    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc.msg} at column {exc.colno}") from exc


async def _run_one(
    args: argparse.Namespace,
    dataset: EvalDataset,
    target: GuardTarget,
    judge: EvalJudge,
    grader: JudgeGrader | None,
) -> RunResult:
    from cosa_guard.evaluation.runner import run as run_dataset

    path = args.out / f"{_slug(target.name)}.jsonl"
    if args.restart and path.exists():
        path.unlink()
    result = await run_dataset(
        dataset,
        target,
        judge,
        out_path=path,
        resume=True,
        concurrency=args.concurrency,
        progress=not args.quiet,
        grader=grader,
    )
    if result.errors:
        print(
            f"warning: {result.errors} example(s) of {target.name} failed and were not recorded; "
            "run the same command again to retry them",
            file=sys.stderr,
        )
    return result


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def _print_summary(result_path: Path) -> None:
    """`name=value` lines per run, for scripts and benchmark logs."""
    result = json.loads(result_path.read_text(encoding="utf-8"))
    for run in result["runs"]:
        slug = _slug(run["name"])
        for part in ("overall", "seen", "unseen"):
            rates = run[part]["rates"]
            if rates is not None:
                print(f"{slug}.{part}.cosa_score={rates['score']:.4f}")
        rates = run["overall"]["rates"] or {}
        for key in ("helpful_safe", "helpful_unsafe"):
            if key in rates:
                print(f"{slug}.{key}={rates[key]:.4f}")
        print(f"{slug}.valid_rate={run['valid_rate']:.4f}")
        for pair in run.get("agreement", []):
            key = f"{slug}.agreement.{_slug(pair['a'])}.{_slug(pair['b'])}"
            for part in ("raw", "kappa"):
                value = pair[part]
                print(f"{key}.{part}=" + ("nan" if value is None else f"{value:.4f}"))
