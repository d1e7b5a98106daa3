"""guard_chain: the model steps of an existing LCEL chain answer through the guard; nothing else changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cosa_guard_langchain import ChatModelBackend, GuardedChatModel, GuardRefusalError, guard_chain
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_core.tools import tool
from lc_fixtures import DEPLOYMENT, MARKER, REFUSAL, fake_model, guard_options, write_deployment

from cosa_guard.guard import Guard

SAFE = "A friendly robot helped the class plant a garden."
UNSAFE = f"Sure: here is how to get {MARKER} items past the school gate."
PROMPT = ChatPromptTemplate.from_messages([("human", "{ask}")])


@tool
def lookup(term: str) -> str:
    """Look a term up."""
    return term


def test_prompt_model_parser_chain_is_guarded(tmp_path: Path) -> None:
    path, _ = write_deployment(tmp_path)
    model = fake_model(SAFE, UNSAFE)
    chain = PROMPT | model | StrOutputParser()
    guarded = guard_chain(chain, deployment=DEPLOYMENT, deployments=path, **guard_options())
    assert guarded.invoke({"ask": "a story"}) == SAFE
    assert guarded.invoke({"ask": "another"}) == REFUSAL
    assert isinstance(guarded.steps[1], GuardedChatModel)
    assert chain.steps[1] is model  # the original chain is left as it was
    assert len(model.sent) == 2


async def test_every_model_in_a_parallel_is_guarded_and_bindings_stay_units(tmp_path: Path) -> None:
    path, _ = write_deployment(tmp_path)
    plain, with_tools = fake_model(UNSAFE), fake_model(SAFE)
    chain = PROMPT | RunnableParallel(a=plain | StrOutputParser(), b=with_tools.bind_tools([lookup]))
    guarded = guard_chain(chain, deployment=DEPLOYMENT, deployments=path, **guard_options())
    out = await guarded.ainvoke({"ask": "go"})
    assert out["a"] == REFUSAL
    assert out["b"].content == SAFE
    assert out["b"].response_metadata["cosa_guard"]["decision"] == "allowed"
    assert with_tools.options[0]["tools"][0]["function"]["name"] == "lookup"


@pytest.mark.parametrize("with_guard", [True, False], ids=["guard", "deployments"])
def test_raise_on_refusal_reaches_every_guarded_step(tmp_path: Path, with_guard: bool) -> None:
    path, deployment = write_deployment(tmp_path)
    chain = PROMPT | fake_model(UNSAFE) | StrOutputParser()
    if with_guard:
        guard = Guard.single(deployment, fallback=ChatModelBackend(), **guard_options())
        guarded = guard_chain(chain, deployment=DEPLOYMENT, guard=guard, raise_on_refusal=True)
    else:
        guarded = guard_chain(
            chain, deployment=DEPLOYMENT, deployments=path, raise_on_refusal=True, **guard_options()
        )
    with pytest.raises(GuardRefusalError):
        guarded.invoke({"ask": "go"})


async def test_a_guard_with_a_slot_serves_the_chains_model(tmp_path: Path) -> None:
    _, deployment = write_deployment(tmp_path)
    guard = Guard.single(deployment, fallback=ChatModelBackend(), **guard_options())
    guarded = guard_chain(PROMPT | fake_model(UNSAFE) | StrOutputParser(), deployment=DEPLOYMENT, guard=guard)
    assert await guarded.ainvoke({"ask": "go"}) == REFUSAL


def test_already_guarded_models_are_left_alone_and_an_empty_chain_is_an_error(tmp_path: Path) -> None:
    path, _ = write_deployment(tmp_path)
    once = guard_chain(PROMPT | fake_model(SAFE), deployment=DEPLOYMENT, deployments=path, **guard_options())
    with pytest.raises(ValueError, match="no unguarded chat model"):
        guard_chain(once, deployment=DEPLOYMENT, deployments=path, **guard_options())
    hidden = PROMPT | RunnableLambda(lambda p: fake_model(SAFE).invoke(p))
    with pytest.raises(ValueError, match="RunnableLambda"):
        guard_chain(hidden, deployment=DEPLOYMENT, deployments=path)


def test_exactly_one_source_of_guard(tmp_path: Path) -> None:
    path, deployment = write_deployment(tmp_path)
    guard = Guard.single(deployment, fallback=ChatModelBackend(), **guard_options())
    chain: Any = PROMPT | fake_model(SAFE)
    with pytest.raises(ValueError, match="exactly one"):
        guard_chain(chain, deployment=DEPLOYMENT)
    with pytest.raises(ValueError, match="exactly one"):
        guard_chain(chain, deployment=DEPLOYMENT, guard=guard, deployments=path)
    with pytest.raises(ValueError, match="only apply with deployments"):
        guard_chain(chain, deployment=DEPLOYMENT, guard=guard, judge=None)
