"""`cosa-guard train` wiring: help, missing arguments, the import step, accelerate launch files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cosa_guard_training.__main__ import main as module_main
from cosa_guard_training.detectors import judge_train

from cosa_guard.cli import main

ACCELERATE = Path(__file__).resolve().parents[1] / "accelerate"


def test_train_help_lists_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for step in ("synth", "responses", "label", "pairs", "fit", "import", "judge", "injection"):
        assert re.search(rf"^\s+{step}\s", out, re.MULTILINE), step


def test_train_judge_runs_the_judge_trainer_with_its_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpora: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        judge_train,
        "judge_corpus",
        lambda data, seed, public, real: corpora.append((data, seed, public, real)) or [],
    )
    monkeypatch.setattr(
        judge_train,
        "recalibrate",
        lambda out, rows, beta, cap, per_source, scores: {
            "threshold_beta": beta,
            "per_source": per_source,
            "scores": str(scores),
        },
    )
    args = ["train", "judge", "--calibrate-only", "--out", str(tmp_path), "--no-real", "--beta", "2"]
    assert main([*args, "--pooled-cap", "--scores", "s.json"]) == 0
    assert corpora == [(None, 0, True, False)]
    assert json.loads(capsys.readouterr().out) == {
        "out": str(tmp_path),
        "threshold_beta": 2.0,
        "per_source": False,
        "scores": "s.json",
    }


def test_train_injection_takes_the_trainers_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        module_main(["injection", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--recalibrate" in out and "--generated-share" in out


def test_train_without_recipe_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train"]) == 2
    assert "--recipe" in capsys.readouterr().err


def test_errors_name_the_step_to_run_or_the_bad_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "pairs", "--recipe", "tiny", "--output", str(tmp_path)]) == 1
    assert "run `cosa-guard train label`" in capsys.readouterr().err
    assert main(["train", "synth", "--recipe", "nope", "--output", str(tmp_path)]) == 1
    assert "built-in recipes are" in capsys.readouterr().err


def test_import_step_writes_pairs_and_prints_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {
        "system_prompt": "s",
        "prompt": "p",
        "chosen_response": "good",
        "rejected_response": "bad",
        "spec_i": "--",
        "spec_j": "-Violence-",
    }
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps(row) + "\n")
    # The same command through `python -m cosa_guard_training`, the form accelerate launches.
    assert module_main(["import", "--source", str(source), "--output", str(tmp_path / "out")]) == 0
    assert "pairs=1" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "pairs.jsonl").read_text())["spec_j"] == ["violence"]


@pytest.mark.parametrize("name", ["fsdp.yaml", "deepspeed_zero3.yaml"])
def test_accelerate_launch_files_load(name: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ACCELERATE / name))
    expected = "FSDP" if name.startswith("fsdp") else "DEEPSPEED"
    assert config.distributed_type.value == expected
    assert config.mixed_precision == "bf16" and config.num_processes >= 1


def test_synth_labels_unlabelled_prompts_with_the_recipes_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "pool.jsonl"
    texts = ["How do I stab someone?", "Where to buy cocaine?", "What is the capital of France?"]
    prompts.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    out = tmp_path / "run"
    argv = ["train", "synth", "--recipe", "tiny", "--output", str(out), "--prompts", str(prompts)]
    assert main(argv) == 0
    assert "heldout_prompts=1" in capsys.readouterr().out  # the cocaine prompt: drugs is held out
    configs = [json.loads(line) for line in (out / "configs.jsonl").read_text().splitlines()]
    assert {c["prompt"]: c["spec_j"] for c in configs} == {texts[0]: ["violence"], texts[2]: []}


def test_fit_without_pairs_explains_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pairs.jsonl").write_text("")
    assert main(["train", "fit", "--recipe", "tiny", "--output", str(tmp_path)]) == 1
    assert "no preference pairs" in capsys.readouterr().err
