"""The rule that decided a call, and whether the config's rules were reviewed, in every decision."""

from __future__ import annotations

from pathlib import Path

from _guard_fixtures import USER, config, guard_over
from cosa_guard_langchain.chat_model import guard_metadata
from cosa_guard_langchain.errors import GuardRefusalError

from cosa_guard.audit import MemoryAuditSink
from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.cli.chat import _summary
from cosa_guard.cli.judge import verdict_json
from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.server.wire import decision_headers, decision_payload
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import Decision, GuardResponse, RefusalReason, Route, Verdict

RULES = [
    {"number": 1, "text": "Fictional violence is fine", "polarity": "allows", "categories": ["violence"]},
    {"number": 2, "text": "No pork recipes.", "polarity": "forbids"},
]
BY_RULE = Verdict(
    categories=frozenset(),
    complies=False,
    score=0.97,
    judge="rules",
    rule_number=2,
    rule_text="No pork recipes.",
)


async def _refused(tmp_path: Path, *, with_rules: bool) -> tuple[GuardResponse, MemoryAuditSink]:
    signed = SafetyConfig.from_mapping(
        {**config().model_dump(mode="json"), "rules": RULES if with_rules else []}
    )
    path, _ = write_signed_deployment(
        tmp_path, signed, routes={"fallback": {"kind": "scripted", "model": "m"}}
    )
    sink = MemoryAuditSink()
    backend = ScriptedBackend(["Fry the bacon in lard."])
    guard = guard_over(
        DeploymentRegistry.load(path), {"m": backend}, judge=ScriptedJudge([BY_RULE]), sink=sink
    )
    response = await guard.chat("game", USER)
    await guard.aclose()
    return response, sink


async def test_the_deciding_rule_and_reviewed_rules_reach_the_response_and_the_audit(tmp_path: Path) -> None:
    response, sink = await _refused(tmp_path, with_rules=True)
    assert response.decision.label == "refused:output_violation"
    assert response.rule == {"number": 2, "text": "No pork recipes."} and response.rules_reviewed
    (record,) = sink.records
    assert record.rule == {"number": 2, "text": "No pork recipes."} and record.rules_reviewed
    assert "bacon" not in str(record.to_dict())


async def test_a_config_signed_without_rules_is_flagged_unreviewed(tmp_path: Path) -> None:
    response, sink = await _refused(tmp_path, with_rules=False)
    assert response.rule is not None and not response.rules_reviewed
    assert not sink.records[0].rules_reviewed


async def test_every_serialised_decision_carries_the_rule(tmp_path: Path) -> None:
    response, _ = await _refused(tmp_path, with_rules=True)
    rule = {"number": 2, "text": "No pork recipes."}
    payload = decision_payload(response)
    assert payload["rule"] == rule and payload["rules_reviewed"] is True
    assert decision_headers(response) == {
        "x-cosa-guard-decision": "refused:output_violation",
        "x-cosa-guard-rule": "2;reviewed=true",
    }
    metadata = guard_metadata(response)
    assert metadata["rule"] == rule and metadata["rules_reviewed"] is True
    error = GuardRefusalError(response)
    assert error.rule == rule and error.rules_reviewed and "pork" not in str(error)
    assert _summary(response, 1.0).splitlines()[1] == "  [rule 2: No pork recipes.]"
    assert verdict_json(BY_RULE)["rule"] == rule


def test_a_decision_no_rule_made_carries_none() -> None:
    verdict = Verdict(categories=frozenset({"weapons"}), complies=False, score=1.0)
    assert verdict.rule is None and verdict_json(verdict)["rule"] is None
    response = GuardResponse(
        text="no",
        decision=Decision.refused(RefusalReason.OUTPUT_VIOLATION),
        route=Route.CASCADE,
        deployment_id="game",
        config_hash="h",
        verdict=verdict,
    )
    assert response.rule is None and decision_payload(response)["rule"] is None
    assert decision_headers(response) == {"x-cosa-guard-decision": "refused:output_violation"}
    assert len(_summary(response, 1.0).splitlines()) == 1
