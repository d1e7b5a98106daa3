"""The guard's steps as child runs of a GuardedChatModel's run, for LangChain tracers and astream_events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import langchain_core.tracers.langchain
import langsmith
import pytest
from cosa_guard_langchain import guard_chain
from cosa_guard_langchain.steps import run_steps
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from lc_fixtures import (
    DEPLOYMENT,
    MARKER,
    REFUSAL,
    RunTrees,
    fake_model,
    guard_options,
    guard_steps,
    walk,
    write_deployment,
)

PROMPT_TEXT = "Tell me a story about QUOKKA-PROMPT-7 and the moon."
ANSWER_TEXT = "Once upon a time ZEBRA-ANSWER-9 and the moon became friends and shared a long picnic."
UNSAFE = f"ZEBRA-ANSWER-9 explains where to get {MARKER} parts and how to put them together at home."
ASK = [HumanMessage(PROMPT_TEXT)]
POLICY = "A homework helper for children."  # the deployment's config text (lc_fixtures)


async def call(guarded: Any, way: str, config: Any) -> str:
    """The guarded call's text, made the `way` asked (sync ways run on this thread)."""
    if way == "invoke":
        return str(guarded.invoke(ASK, config).text)
    if way == "ainvoke":
        return str((await guarded.ainvoke(ASK, config)).text)
    if way == "stream":
        return "".join(chunk.text for chunk in guarded.stream(ASK, config))
    return "".join([chunk.text async for chunk in guarded.astream(ASK, config)])


WAYS = ["invoke", "ainvoke", "stream", "astream"]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(
    ("answer", "decision"), [(ANSWER_TEXT, "allowed"), (UNSAFE, "refused:output_violation")]
)
async def test_guard_steps_are_child_runs_of_the_model_run(
    make_guarded: Any, way: str, answer: str, decision: str
) -> None:
    tracer = RunTrees()
    text = await call(make_guarded(fake_model(answer)), way, {"callbacks": [tracer]})
    assert text == (answer if decision == "allowed" else REFUSAL)
    (root,) = tracer.roots
    assert root.name == "GuardedChatModel" and root.run_type == "llm"
    steps = guard_steps(root, decision, PROMPT_TEXT, "QUOKKA", "ZEBRA", MARKER, POLICY)
    names = [s.name for s in steps]
    if way in ("invoke", "ainvoke"):
        assert names == ["cosa_guard.input_scan", "cosa_guard.generate", "cosa_guard.judge"]
    # The wrapped model's own run sits next to the guard's, under the guarded model's run.
    assert [r.name for r in root.child_runs if not r.name.startswith("cosa_guard.")] == ["RecordingChatModel"]


@pytest.mark.parametrize("way", WAYS)
async def test_steps_nest_under_the_model_run_inside_a_chain(make_guarded: Any, way: str) -> None:
    tracer = RunTrees()
    guarded = make_guarded(fake_model(ANSWER_TEXT))
    chain = RunnableLambda(lambda messages: messages) | guarded
    await call(chain, way, {"callbacks": [tracer]})
    (root,) = tracer.roots
    (model_run,) = [r for r in walk(root) if r.name == "GuardedChatModel"]
    guard_steps(model_run, "allowed", PROMPT_TEXT, "QUOKKA", "ZEBRA", POLICY)


@tool
def lookup(term: str) -> str:
    """Look a term up."""
    return term


@pytest.mark.parametrize("way", WAYS)
async def test_guard_chain_models_bound_to_tools_show_their_steps(tmp_path: Path, way: str) -> None:
    path, _ = write_deployment(tmp_path)
    chain = RunnableLambda(lambda messages: messages) | fake_model(ANSWER_TEXT).bind_tools([lookup])
    guarded = guard_chain(chain, deployment=DEPLOYMENT, deployments=path, **guard_options())
    tracer = RunTrees()
    await call(guarded, way, {"callbacks": [tracer]})
    (root,) = tracer.roots
    (model_run,) = [r for r in walk(root) if r.name == "GuardedChatModel"]
    guard_steps(model_run, "allowed", PROMPT_TEXT, "QUOKKA", "ZEBRA", POLICY)


class LangSmithClient:
    """Records the runs LangSmith's tracer creates (what it would post)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create_run(self, **run: Any) -> None:
        self.created.append(run)

    def update_run(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize("way", WAYS)
async def test_langsmith_tracing_puts_the_steps_in_the_model_runs_trace(
    make_guarded: Any, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tracing switched on without a callback (as LANGSMITH_TRACING=true does): LangChain builds a
    # tracer per configured run tree, and the steps must reach the one tracing the model's run.
    client = LangSmithClient()
    monkeypatch.setattr(langchain_core.tracers.langchain, "get_client", lambda: client)
    with langsmith.tracing_context(enabled=True):
        await call(make_guarded(fake_model(ANSWER_TEXT)), way, None)
    by_name = {run["name"]: run for run in client.created}
    model_run = by_name["GuardedChatModel"]
    guard_call = by_name["cosa_guard.stream" if "stream" in way else "cosa_guard.chat"]
    assert guard_call["parent_run_id"] == model_run["id"]
    assert by_name["RecordingChatModel"]["parent_run_id"] == model_run["id"]
    assert {run["trace_id"] for run in client.created} == {model_run["id"]}


class Down(GenericFakeChatModel):
    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError(f"provider unreachable while answering {PROMPT_TEXT}")


@pytest.mark.parametrize("way", WAYS)
async def test_a_failed_step_ends_with_its_error_type_only(make_guarded: Any, way: str) -> None:
    tracer = RunTrees()
    with pytest.raises(Exception, match="failed:backend"):
        await call(make_guarded(Down(messages=iter([]))), way, {"callbacks": [tracer]})
    (root,) = tracer.roots
    (guard_call,) = [r for r in root.child_runs if r.name.startswith("cosa_guard.")]
    assert guard_call.outputs == {"route": "cascade", "decision": "failed:backend"}
    (generate,) = [r for r in guard_call.child_runs if r.name == "cosa_guard.generate"]
    assert generate.error is not None and "GuardStepError: BackendError" in generate.error
    for run in walk(guard_call):
        assert "QUOKKA" not in str([run.inputs, run.outputs, run.error])


async def test_astream_events_show_the_steps_under_the_model_run(make_guarded: Any) -> None:
    guarded = make_guarded(fake_model(ANSWER_TEXT))
    events = [e async for e in guarded.astream_events(ASK, version="v2")]
    (model_start,) = [e for e in events if e["event"] == "on_chat_model_start"]
    starts = [e for e in events if e["event"] == "on_chain_start" and e["name"].startswith("cosa_guard.")]
    assert [e["name"] for e in starts][:3] == [
        "cosa_guard.stream",
        "cosa_guard.input_scan",
        "cosa_guard.generate",
    ]
    assert starts[0]["parent_ids"] == [model_start["run_id"]]
    assert all(e["parent_ids"] == [model_start["run_id"], starts[0]["run_id"]] for e in starts[1:])
    (end,) = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "cosa_guard.stream"]
    assert end["data"]["output"] == {"route": "cascade", "decision": "allowed", "categories": ""}
    steps = [e for e in events if e["name"].startswith("cosa_guard.")]
    assert not any("ZEBRA" in str(e["data"]) or "QUOKKA" in str(e["data"]) for e in steps)


async def test_an_invoke_that_streams_for_astream_events_nests_its_steps_too(make_guarded: Any) -> None:
    # An ainvoke under astream_events streams through `_astream`, which LangChain calls without
    # the model run's manager.
    guarded = make_guarded(fake_model(ANSWER_TEXT))

    async def ask(messages: Any) -> Any:
        return await guarded.ainvoke(messages)

    events = [e async for e in RunnableLambda(ask).astream_events(ASK, version="v2")]
    (model_start,) = [e for e in events if e["event"] == "on_chat_model_start"]
    (call_start,) = [e for e in events if e["event"] == "on_chain_start" and e["name"] == "cosa_guard.stream"]
    assert call_start["parent_ids"][-1] == model_start["run_id"]


def test_no_observer_when_nothing_listens() -> None:
    assert run_steps(None) is None and run_steps([]) is None
    assert run_steps([RunTrees()]) is not None
