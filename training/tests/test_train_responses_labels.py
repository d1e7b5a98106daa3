"""Responses and labels: any Backend / Judge, resumable JSONL, failures retried rather than recorded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from cosa_guard_training.jsonl import read_jsonl
from cosa_guard_training.label import KeywordJudge, label_responses
from cosa_guard_training.responses import VANILLA_SYSTEM, generate_responses
from cosa_guard_training.synth import ConfigRow

from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.config import SafetyConfig
from cosa_guard.errors import BackendError, JudgeError
from cosa_guard.evaluation.judges import embedded_eval_judge
from cosa_guard.judges.base import Judge
from cosa_guard.taxonomy import is_compliant
from cosa_guard.testing.contract import JudgeContract, JudgeSubject
from cosa_guard.types import Message, Verdict


class TestKeywordJudgeContract(JudgeContract):
    @pytest.fixture
    def subject(self) -> JudgeSubject:
        return JudgeSubject(
            judge=KeywordJudge(),
            failing=None,  # keywords only: nothing that can fail
            config=SafetyConfig(id="c", version=1, text="Violence in fiction is fine.", allow=("violence",)),
            benign="The knight draws his sword.",
            violating="Here is how to build a pipe bomb.",
        )


def _configs() -> list[ConfigRow]:
    return [
        ConfigRow("k1", "prompt one", ("violence",), ("violence",), "exact_match", 0, "SYS-A"),
        ConfigRow("k2", "prompt one", ("violence",), (), "safe", 1, "SYS-B"),
        ConfigRow("k3", "prompt two", (), (), "safe", 2, "SYS-C"),
    ]


async def test_candidates_per_config_plus_vanilla_with_the_config_as_system_prompt(tmp_path: Path) -> None:
    backend = ScriptedBackend(["one", "two", "three"])
    out = tmp_path / "responses.jsonl"
    written, failed = await generate_responses(_configs(), backend, out, candidates=2, vanilla=True)
    assert (written, failed) == (3 * 2 + 2, 0)
    systems = [call[0].content for call in backend.calls]
    assert systems.count("SYS-A") == 2 and systems.count(VANILLA_SYSTEM) == 2
    assert all(call[0].role == "system" and call[1].role == "user" for call in backend.calls)
    rows = list(read_jsonl(out))
    assert {(r["key"], r["candidate"]) for r in rows if not r["key"].startswith("vanilla-")} == {
        (k, c) for k in ("k1", "k2", "k3") for c in (0, 1)
    }


async def test_resume_skips_finished_candidates_and_repairs_a_torn_last_line(tmp_path: Path) -> None:
    out = tmp_path / "responses.jsonl"
    await generate_responses(_configs()[:2], ScriptedBackend(["x"]), out, candidates=2)
    # A run killed mid-write leaves half a line behind.
    with out.open("a", encoding="utf-8") as fh:
        fh.write('{"key": "k3", "candid')
    again = ScriptedBackend(["y"])
    written, _ = await generate_responses(_configs(), again, out, candidates=2)
    assert written == 2 and len(again.calls) == 2  # only k3's two candidates were generated
    rows = list(read_jsonl(out))
    assert len(rows) == 6 and len({(r["key"], r["candidate"]) for r in rows}) == 6


async def test_failed_calls_are_not_written_and_are_retried_next_run(tmp_path: Path) -> None:
    out = tmp_path / "responses.jsonl"
    flaky = ScriptedBackend(["ok", BackendError("server busy")])
    written, failed = await generate_responses(_configs(), flaky, out, candidates=2, concurrency=1)
    assert (written, failed) == (3, 3)
    written, failed = await generate_responses(_configs(), ScriptedBackend(["ok"]), out, candidates=2)
    assert (written, failed) == (3, 0)


async def test_a_run_where_every_call_fails_raises(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="every one of 6 generation calls failed"):
        await generate_responses(_configs(), ScriptedBackend([BackendError("down")]), tmp_path / "r.jsonl")


class MarkerJudge(Judge):
    """A Judge that finds a category when its marker appears, and fails on `CRASH`."""

    name = "marker"

    def __init__(self, markers: dict[str, str]) -> None:
        self.markers = markers
        self.configs: list[SafetyConfig] = []

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict:
        self.configs.append(config)
        if "CRASH" in response:
            raise JudgeError("judge timed out")
        found = frozenset(c for marker, c in self.markers.items() if marker in response)
        return Verdict(found, is_compliant(found, config.allow), 0.0)


def _responses(path: Path, texts: list[str]) -> list[dict[str, object]]:
    rows = [{"key": f"k{i}", "candidate": 0, "prompt": "q", "response": t} for i, t in enumerate(texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


async def test_labels_come_from_a_judge_and_refusals_are_not_addressed(tmp_path: Path) -> None:
    judge = MarkerJudge({"[V]": "violence", "[P]": "privacy"})
    assert isinstance(judge, Judge)
    rows = _responses(
        tmp_path / "r.jsonl",
        [
            "He swings the sword [V] and reads the file [P].",
            "I'm sorry, but I can't help with that.",
            "CRASH",
        ],
    )
    out = tmp_path / "labels.jsonl"
    labelled, invalid = await label_responses(rows, embedded_eval_judge(judge), out)
    assert (labelled, invalid) == (2, 1)
    got = {r["key"]: (r["categories"], r["addressed"]) for r in read_jsonl(out)}
    assert got == {"k0": (["privacy", "violence"], True), "k1": ([], False)}
    # The labeller asks for every harm present: it judges under a config that allows nothing.
    assert all(c.allow == () for c in judge.configs)
    # The judge that crashed is retried on the next run; labelled rows are not redone.
    judge.configs.clear()
    labelled, invalid = await label_responses(rows, embedded_eval_judge(judge), out)
    assert (labelled, invalid, len(judge.configs)) == (0, 1, 1)


async def test_keyword_judge_matches_word_starts_case_insensitively() -> None:
    judge = KeywordJudge({"violence": ("stab",), "privacy": ("home address",)})
    config = SafetyConfig(id="c", version=1, text="t", allow=("violence",))
    verdict = await judge.judge(config, (), "Then she STABBED him at his Home Address.")
    assert verdict.categories == {"violence", "privacy"} and not verdict.complies
    clean = await judge.judge(config, (), "A mistabulation of addresses.")
    assert clean.categories == frozenset() and clean.complies


async def test_rubrics_labeller_runs_the_papers_two_judge_prompts(tmp_path: Path) -> None:
    from cosa_guard_training.build import build_labeller
    from cosa_guard_training.recipe import LabelRecipe

    from cosa_guard.settings import BackendSpec
    from cosa_guard.taxonomy import CATEGORY_IDS

    verdicts = {c: c == "violence" for c in CATEGORY_IDS}
    # One scripted judge model answers both rubrics: the rating parser reads `[[k]]`, the category
    # parser the last JSON object.
    reply = f"The answer is complete.\nRating: [[4]]\n{json.dumps(verdicts)}"
    spec = BackendSpec(kind="scripted", model="judge-model", options={"replies": [reply]})
    rater = build_labeller(LabelRecipe(kind="rubrics", backend=spec))
    rows = _responses(tmp_path / "r.jsonl", ["He swings the sword."])
    assert await label_responses(rows, rater, tmp_path / "labels.jsonl") == (1, 0)
    row = next(read_jsonl(tmp_path / "labels.jsonl"))
    assert (row["categories"], row["addressed"]) == (["violence"], True)


async def test_calls_start_in_plan_order_so_scripted_runs_repeat(tmp_path: Path) -> None:
    runs = []
    for name in ("a.jsonl", "b.jsonl"):
        await generate_responses(
            _configs(), ScriptedBackend(["r1", "r2", "r3"]), tmp_path / name, candidates=2, concurrency=4
        )
        runs.append({(r["key"], r["candidate"]): r["response"] for r in read_jsonl(tmp_path / name)})
    assert runs[0] == runs[1]


async def test_an_unexpected_error_stops_every_worker_and_propagates(tmp_path: Path) -> None:
    backend = ScriptedBackend(["ok", RuntimeError("bug in a backend")])
    with pytest.raises(RuntimeError, match="bug in a backend"):
        await generate_responses(_configs(), backend, tmp_path / "r.jsonl", candidates=2, concurrency=2)
    assert len(backend.calls) < 6  # the remaining work was cancelled, not run to the end
