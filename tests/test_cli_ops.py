"""Operations around the CLI: --version, logging options, serve options from the environment, the schema."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from cosa_guard.cli import build_parser, main
from cosa_guard.cli.deployments import schema_text
from cosa_guard.cli.serve import _cors_origins
from cosa_guard.config import SafetyConfig
from cosa_guard.logs import configure_logging
from cosa_guard.request_ids import current_request_id
from cosa_guard.testing.deployments import write_signed_deployment

Cap = pytest.CaptureFixture[str]
DOCS_SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "deployments.schema.json"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_version_is_the_installed_distributions(capsys: Cap) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"cosa-guard {version('cosa-guard')}"


def test_serve_options_come_from_the_environment_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, capsys: Cap
) -> None:
    monkeypatch.setenv("COSA_GUARD_DEPLOYMENTS", "/etc/cosa/deployments.yaml")
    monkeypatch.setenv("COSA_GUARD_HOST", "0.0.0.0")
    monkeypatch.setenv("COSA_GUARD_PORT", "9000")
    monkeypatch.setenv("COSA_GUARD_WORKERS", "3")
    monkeypatch.setenv("COSA_GUARD_WATCH_INTERVAL", "0")
    monkeypatch.setenv("COSA_GUARD_LOG_LEVEL", "debug")
    monkeypatch.setenv("COSA_GUARD_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("COSA_GUARD_BODY_TIMEOUT", "12.5")
    args = build_parser().parse_args(["serve"])
    assert args.body_timeout == 12.5
    assert (args.deployments, args.host, args.port, args.workers, args.watch_interval) == (
        Path("/etc/cosa/deployments.yaml"),
        "0.0.0.0",
        9000,
        3,
        0.0,
    )
    assert args.log_level == "debug"
    assert _cors_origins(args.cors_origin) == ["https://a.example", "https://b.example"]
    flagged = build_parser().parse_args(
        ["serve", "--port", "9100", "--log-level", "error", "--cors-origin", "*"]
    )
    assert (flagged.port, flagged.log_level, _cors_origins(flagged.cors_origin)) == (9100, "error", ["*"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    help_text = capsys.readouterr().out
    assert "COSA_GUARD_PORT" in help_text and "COSA_GUARD_DEPLOYMENTS" in help_text


def test_a_bad_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch, capsys: Cap) -> None:
    monkeypatch.setenv("COSA_GUARD_PORT", "eighty")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve"])
    assert "invalid int value: 'eighty'" in capsys.readouterr().err
    monkeypatch.setenv("COSA_GUARD_LOG_LEVEL", "loud")
    assert main(["deployments", "schema"]) == 2
    assert "log level must be one of" in capsys.readouterr().err


def test_global_and_command_log_levels(capsys: Cap) -> None:
    parser = build_parser()
    assert parser.parse_args(["--log-level", "debug", "serve"]).log_level == "debug"
    assert parser.parse_args(["serve", "--log-level", "error"]).log_level == "error"
    assert parser.parse_args(["serve"]).log_level is None  # main() falls back to serve's INFO
    assert parser.parse_args(["serve"]).command_log_level == "info"


def test_json_logs_carry_level_logger_time_and_request_id(capsys: Cap) -> None:
    configure_logging("info", "json")
    token = current_request_id.set("req-7")
    try:
        logging.getLogger("cosa_guard.server").info("deployments reloaded (%s): %s", "SIGHUP", "game")
        logging.getLogger("httpx").info("HTTP Request: POST http://upstream")  # another library's INFO
        logging.getLogger("httpx").warning("upstream slow")
    finally:
        current_request_id.reset(token)
    logging.getLogger("cosa_guard.guard").debug("not at info")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["logger"], x["level"], x["message"]) for x in lines] == [
        ("cosa_guard.server", "INFO", "deployments reloaded (SIGHUP): game"),
        ("httpx", "WARNING", "upstream slow"),
    ]
    assert lines[0]["request_id"] == "req-7"
    assert lines[0]["ts"].endswith("+00:00")


def test_text_logs_name_the_level_logger_and_request_id(capsys: Cap) -> None:
    configure_logging("debug", "text")
    configure_logging("debug", "text")  # configuring twice replaces, never doubles, the handler
    logging.getLogger("cosa_guard.guard").debug("breaker closed")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" DEBUG cosa_guard.guard [-] breaker closed")


def test_deployments_schema_is_generated_and_the_docs_copy_is_current(capsys: Cap) -> None:
    assert main(["deployments", "schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text()
    assert DOCS_SCHEMA.read_text(encoding="utf-8") == printed, (
        "docs/deployments.schema.json is stale: cosa-guard deployments schema > docs/deployments.schema.json"
    )


def test_the_schema_describes_a_real_deployments_file(tmp_path: Path) -> None:
    config = SafetyConfig(id="game", version=1, text="Fiction.", allow=["violence"])
    path, _ = write_signed_deployment(
        tmp_path, config, routes={"fallback": {"kind": "scripted"}}, audit={"path": "audit.jsonl"}
    )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema = json.loads(schema_text())
    assert set(data) <= set(schema["properties"]) and "deployments" in schema["required"]
    spec = schema["$defs"]["DeploymentSpec"]
    for deployment in data["deployments"].values():
        assert set(deployment) <= set(spec["properties"])
        assert set(spec.get("required", ())) <= set(deployment)
    assert spec["additionalProperties"] is False  # a typo is flagged by an editor, as by the server
