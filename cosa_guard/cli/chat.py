"""`cosa-guard chat`: an interactive terminal chat through the guard, showing each decision."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Coroutine
from typing import Any

from cosa_guard.types import GuardResponse, Message

DESCRIPTION = """\
Chat in the terminal through a guarded deployment, in-process (no server needed).

  cosa-guard chat                                         the demo deployment (game studio)
  cosa-guard chat --deployments deployments.yaml --deployment game-studio

Answers stream as the deployment's stream mode releases them. After each answer a line shows
the guard's decision, the route (cosalign / cascade), the categories the judge found, the
config rule that decided (with its text; "unreviewed" when the config's rules were derived from
its text rather than signed) and the latency. Commands: /reset forgets the conversation, /quit
(or Ctrl-D) leaves; Ctrl-C stops the answer being generated.
"""

PROMPT = "you> "


def register(subparsers: Any) -> None:
    from cosa_guard.cli._guarded import add_deployments_option

    parser = subparsers.add_parser(
        "chat",
        help="interactive terminal chat through a guarded deployment (the demo when no --deployments)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_deployments_option(parser)
    parser.add_argument(
        "--deployment",
        metavar="ID",
        help="which deployment of FILE to talk to (default: the only one in the file)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cosa_guard.cli._guarded import resolve
    from cosa_guard.guard import Guard

    target = resolve(args.deployments)
    guard = Guard.from_file(target.path)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(guard.warm_up())
        deployment_id = _pick(guard.registry.ids(), args.deployment or target.demo_id)
        print(f"chatting with deployment {deployment_id!r}; /reset forgets the conversation, /quit leaves")
        history: list[Message] = []
        while (line := _read()) is not None:
            if line in ("/quit", "/exit"):
                break
            if line == "/reset":
                history.clear()
                print("(conversation forgotten)")
                continue
            if not line:
                continue
            history.append(Message("user", line))
            response = _run_turn(loop, _turn(guard, deployment_id, history))
            if response is None or not response.decision.is_allowed:
                history.pop()  # a blocked turn stays out of the context the model sees next time
            else:
                history.append(Message("assistant", response.text))
        return 0
    finally:
        loop.run_until_complete(guard.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _run_turn(
    loop: asyncio.AbstractEventLoop, turn: Coroutine[Any, Any, GuardResponse | None]
) -> GuardResponse | None:
    """Run one turn; Ctrl-C stops the answer (the guard cancels generation) and keeps the chat going."""
    task = loop.create_task(turn)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        # KeyboardInterrupt again when the signal landed inside the turn's own code.
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            loop.run_until_complete(task)
        print("\n(stopped; Ctrl-D or /quit leaves)")
        return None


def _pick(ids: tuple[str, ...], wanted: str | None) -> str:
    from cosa_guard.errors import DeploymentError

    if wanted is not None:
        if wanted not in ids:
            raise DeploymentError(f"no deployment {wanted!r} in the file; it has: {', '.join(ids) or 'none'}")
        return wanted
    if len(ids) != 1:
        raise DeploymentError(
            f"the file has {len(ids)} deployments ({', '.join(ids)}); pick one with --deployment"
        )
    return ids[0]


def _read() -> str | None:
    try:
        return input(PROMPT).strip()
    except EOFError:
        print()
        return None


async def _turn(guard: Any, deployment_id: str, history: list[Message]) -> GuardResponse | None:
    from cosa_guard.errors import IncompleteStreamError
    from cosa_guard.streaming import StreamFold

    started = time.perf_counter()
    print("bot> ", end="", flush=True)
    fold = StreamFold(guard.stream(deployment_id, list(history)))
    async with contextlib.aclosing(fold):
        async for text in fold.texts():
            print(text, end="", flush=True)
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        answer = fold.answer()
    except IncompleteStreamError:
        print("\n[no decision: the guard ended the stream early]", file=sys.stderr)
        return None
    if answer.retracted:
        print(f"\n[retracted: {answer.response.decision.label}] ", end="")
    print(answer.closing)
    print(_summary(answer.response, latency_ms))
    return answer.response


def _summary(response: GuardResponse, latency_ms: float) -> str:
    categories = ",".join(sorted(response.categories)) or "none"
    line = (
        f"  [decision={response.decision.label} route={response.route.value} "
        f"categories={categories} latency={latency_ms:.0f}ms]"
    )
    rule = response.rule
    if rule is None:
        return line
    reviewed = "" if response.rules_reviewed else " (unreviewed)"
    return f"{line}\n  [rule {rule['number']}{reviewed}: {rule['text']}]"
