"""The guard's steps as LangChain child runs, for any tracer (LangSmith, `astream_events`, callbacks).

A guarded call is a chain run `cosa_guard.chat` (or `cosa_guard.stream`) nested under the run
that made it (the guarded model's run, or an agent's model node), with one child run per step:
`cosa_guard.input_scan`, `cosa_guard.generate`, `cosa_guard.judge`. Each starts and ends with its
step. Inputs and outputs are the guard's identifiers and labels, never prompt, answer or config
text: the call's inputs are `deployment`, `config_hash` and `request_id`, its outputs `route` and
`decision`. A failed step ends with a `GuardStepError` naming the exception's type only.

The guard reports its steps from sync code (`cosa_guard.tracing`), so they go through a sync
callback manager: sync handlers (LangSmith's tracer, most callbacks) run inline; async ones
(`astream_events`) the way LangChain runs them from sync code, in its thread pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import CallbackManager
from langchain_core.callbacks.manager import CallbackManagerForChainRun
from langchain_core.runnables import ensure_config

__all__ = ["GuardStepError", "RunSteps", "run_steps"]


class GuardStepError(Exception):
    """How a failed step ends its run: the exception's type, never its message (it may quote the prompt)."""


def run_steps(callbacks: Any = None) -> RunSteps | None:
    """A step observer for runs nested under `callbacks` (None: the current run's); None when
    nothing would see them (no handler)."""
    if callbacks is None:
        callbacks = ensure_config().get("callbacks")
    manager = CallbackManager.configure(inheritable_callbacks=callbacks)
    return RunSteps(manager) if manager.handlers else None


class RunSteps:
    """A `cosa_guard.tracing.StepObserver`: each call's steps as child runs under `manager`'s run."""

    __slots__ = ("_manager",)

    def __init__(self, manager: CallbackManager) -> None:
        self._manager = manager

    def start(self, name: str, attributes: Mapping[str, str] | None) -> StepRun:
        return StepRun(self._manager, name, attributes)


class StepRun:
    """One step's run; its children are runs under it."""

    __slots__ = ("_run",)

    def __init__(self, manager: CallbackManager, name: str, attributes: Mapping[str, str] | None) -> None:
        self._run: CallbackManagerForChainRun = manager.on_chain_start(None, _labels(attributes), name=name)

    def start(self, name: str, attributes: Mapping[str, str] | None) -> StepRun:
        return StepRun(self._run.get_child(), name, attributes)

    def end(self, attributes: Mapping[str, str] | None, *, failed: bool) -> None:
        if failed:
            self._run.on_chain_error(GuardStepError((attributes or {}).get("error.type", "Exception")))
        else:
            self._run.on_chain_end(_labels(attributes))


def _labels(attributes: Mapping[str, str] | None) -> dict[str, str]:
    # The OpenTelemetry attribute names, less the namespace a run's own inputs do not need.
    return {key.removeprefix("cosa_guard."): value for key, value in (attributes or {}).items()}
