"""Evaluation datasets: the bundled one, YAML with config files, JSON Lines, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosa_guard.errors import ConfigError
from cosa_guard.evaluation.dataset import EvalDataset
from cosa_guard.taxonomy import CATEGORY_IDS


def test_bundled_dataset_covers_seen_unseen_and_every_prompt_type() -> None:
    ds = EvalDataset.bundled()
    assert len(ds) >= 20
    assert {e.seen for e in ds.configs.values()} == {True, False}
    assert {e.type for e in ds.examples} == {"allowed", "disallowed", "partial"}
    for entry in ds.configs.values():
        assert set(entry.config.allow) <= set(CATEGORY_IDS)
        assert sum(e.config_id == entry.config.id for e in ds.examples) >= 3


def test_yaml_with_a_config_file_and_the_default_seen_mark(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pharma.yaml").write_text(
        "id: pharma\nversion: 1\ntext: Drug facts for pharmacists.\nallow: [drugs]\n", encoding="utf-8"
    )
    (tmp_path / "ds.yaml").write_text(
        "configs:\n"
        "  - {file: configs/pharma.yaml}\n"
        "  - {id: bank, version: 1, text: Fraud desk., allow: [financial_crime]}\n"
        "examples:\n"
        '  - {id: p1, config: pharma, prompt: "Max dose of X?", type: allowed}\n'
        '  - {id: b1, config: bank, prompt: "How do skimmers work?"}\n',
        encoding="utf-8",
    )
    ds = EvalDataset.load(tmp_path / "ds.yaml")
    assert ds.name == "ds"
    assert ds.configs["pharma"].seen is False  # drugs were held out of CoSAlign's training
    assert ds.configs["bank"].seen is True
    assert [(e.id, e.config_id, e.type) for e in ds.examples] == [
        ("p1", "pharma", "allowed"),
        ("b1", "bank", None),
    ]


def test_jsonl_with_inline_configs(tmp_path: Path) -> None:
    config = {"id": "kids", "version": 1, "text": "Homework help.", "allow": [], "seen": True}
    rows = [
        {"id": "k1", "config": config, "prompt": "What is 2+2?", "type": "allowed"},
        {"id": "k2", "config": config, "prompt": "Tell me a gory story", "type": "disallowed"},
    ]
    path = tmp_path / "kids.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ds = EvalDataset.load(path)
    assert list(ds.configs) == ["kids"] and len(ds) == 2
    rows[1]["config"] = dict(config, text="Something else.")
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError, match="differs between examples"):
        EvalDataset.load(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("examples: []\n", "needs `configs` and `examples`"),
        (
            "configs: [{id: a, version: 1, text: t}]\nexamples:\n"
            "  - {id: x, config: a, prompt: p}\n  - {id: x, config: a, prompt: q}\n",
            "repeated",
        ),
        (
            "configs: [{id: a, version: 1, text: t}]\nexamples: [{id: x, config: b, prompt: p}]\n",
            "unknown configs",
        ),
        (
            "configs: [{id: a, version: 1, text: t}]\n"
            "examples: [{id: x, config: a, prompt: p, type: maybe}]\n",
            "type",
        ),
        ("configs: [{id: a, version: 1, text: t, seen: sometimes}]\nexamples: []\n", "seen must be"),
    ],
)
def test_errors_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        EvalDataset.load(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read dataset"):
        EvalDataset.load(tmp_path / "nope.yaml")
