"""Any judge kind on the hand-labelled rule benchmark: configs no judge was built on.

    python benchmarks/rules.py --judge category          # the trained category judge (allow list only)
    python benchmarks/rules.py --judge rules             # the rule-level judge (issue 19)
    python benchmarks/rules.py --judge '{"kind": "category", "threshold": 0.7}' --plot rules.png

Runs every case of `benchmarks/data/rules_cases.jsonl` (132 hand-written cases on the 10 configs of
`rules_configs.yaml`; see `benchmarks/data/README.md`) through the judge's `judge(config, [user
request], answer)`, one call at a time, and prints `name=value` lines:

    n                            cases judged
    accuracy                     verdict (complies or not) equals the human label
    text_only_recall             text_only_violation answers judged non-compliant (only the text forbids them)
    category_violation_recall    answers in a category the allow list does not unlock, judged non-compliant
    partial_recall               answers that start harmless and then violate, judged non-compliant
    over_refusal                 allowed answers and refusals judged non-compliant
    rule_named, rule_hit_rate    cases where the judge named a rule (Verdict.rule_text) and the label has a
                                 deciding sentence; how often the named rule is that sentence
    latency_ms_p50               one judge() call, end to end
    errors                       JudgeErrors (counted as non-compliant: the guard fails closed)
    accuracy.<config>            accuracy per config

The cases must never be used to train or tune a judge.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
PLOTTED = (
    ("accuracy", "accuracy"),
    ("text_only_recall", "text-only\nviolations caught"),
    ("category_violation_recall", "category\nviolations caught"),
    ("partial_recall", "partial answers\ncaught"),
    ("over_refusal", "allowed answers\nrefused"),
)


def _line(name: str, value: Any) -> str:
    if value is None:
        return f"{name}=nan"
    if isinstance(value, float):
        return f"{name}={value:.4f}"
    return f"{name}={value}"


def plot(metrics: Mapping[str, Any], per_config: Mapping[str, float], judge: str, path: Path) -> None:
    from cosa_guard.evaluation.report import new_figure

    fig = new_figure(11.0, 4.0)
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.6))
    values = [metrics[key] or 0.0 for key, _ in PLOTTED]
    bars = left.bar(
        range(len(PLOTTED)), values, color=["#1565c0", "#2e7d32", "#2e7d32", "#2e7d32", "#c62828"]
    )
    left.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
    left.set_xticks(range(len(PLOTTED)), [label for _, label in PLOTTED], fontsize=7)
    left.set_ylim(0, 1.05)
    left.set_title("red: lower is better", fontsize=8)
    names = list(per_config)
    bars = right.bar(range(len(names)), [per_config[n] for n in names], color="#1565c0")
    right.bar_label(bars, labels=[f"{per_config[n]:.2f}" for n in names], fontsize=7, padding=2)
    right.set_xticks(range(len(names)), names, fontsize=7, rotation=30, ha="right")
    right.set_ylim(0, 1.05)
    right.set_title("accuracy per config", fontsize=8)
    fig.suptitle(f"Rule benchmark, judge {judge} ({metrics['n']} hand-labelled cases, unseen configs)")
    fig.savefig(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--judge", default="category", help="a judge kind (category, rules, ...) or a judge spec as JSON"
    )
    parser.add_argument("--cases", type=Path, default=DATA / "rules_cases.jsonl")
    parser.add_argument("--configs", type=Path, default=DATA / "rules_configs.yaml")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw the figures (needs matplotlib)")
    parser.add_argument("--show-misses", action="store_true", help="list the cases the judge got wrong")
    args = parser.parse_args(argv)

    from cosa_guard.errors import ConfigError
    from cosa_guard.evaluation.graders import judge_spec
    from cosa_guard.evaluation.rule_cases import judge_cases, load_cases, per_group_accuracy, rule_metrics
    from cosa_guard.judges.factory import build_judge

    try:
        cases = load_cases(args.cases, args.configs)
        spec = judge_spec(args.judge)
        # Judge kinds load lazily: `rules` exists only where the rule judge is installed.
        judge = build_judge(spec, Path.cwd())
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcomes = asyncio.run(judge_cases(judge, cases))
    metrics = rule_metrics(outcomes)
    per_config = per_group_accuracy(outcomes, "config")
    for name, value in metrics.items():
        print(_line(name, value))
    for config_id, value in per_config.items():
        print(_line(f"accuracy.{config_id}", value))
    if args.show_misses:
        for o in outcomes:
            if o.complies != o.case.complies:
                print(
                    f"# miss {o.case.id} ({o.case.kind}): judged complies={o.complies} ({o.reason})",
                    file=sys.stderr,
                )
    if args.plot:
        plot(metrics, per_config, spec.kind, args.plot)
        print(f"# plot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
