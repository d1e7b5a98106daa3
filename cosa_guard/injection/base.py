"""The contract between the guard and the config-injection defence.

The guard hands the client's messages and the deployment's `InjectionSpec` to an `InputGuard`
and gets back the messages the model may see plus, when the input must not be answered, a
refusal. The defence itself (normaliser, structural rules, trained classifier) lives in this
package; the guard only depends on this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cosa_guard.settings import InjectionSpec
from cosa_guard.types import Message, RefusalReason


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a turn looks like an attack: which detector, where in the turn, why."""

    detector: str  # e.g. "structural:chat_template", "classifier", "unicode:tag_chars"
    reason: str
    message_index: int = -1
    span: tuple[int, int] | None = None
    score: float = 1.0


@dataclass(frozen=True, slots=True)
class InputCheck:
    """The outcome of checking a request's messages.

    `messages` is what the model may see, turn for turn (the guard has already taken the
    client's system turns out by its privilege rule; spans are neutralised when the deployment
    sanitises, and the number of turns stays the same). `refusal` is set when the request must be
    refused; `findings` and `notes` go to the audit record.
    """

    messages: tuple[Message, ...]
    refusal: RefusalReason | None = None
    score: float = 0.0
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = field(default=())


@runtime_checkable
class InputGuard(Protocol):
    async def check(self, messages: Sequence[Message], spec: InjectionSpec) -> InputCheck: ...
