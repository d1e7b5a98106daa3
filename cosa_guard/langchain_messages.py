"""LangChain messages read by duck typing, so the guard takes them as client turns.

`Guard.chat` accepts LangChain messages beside `Message`s and OpenAI-style dicts; reading one needs
only its `type`, `text`, `name` and tool calls, so langchain-core is never imported here. The
LangChain backend and integration (`cosa_guard_langchain`) read the model's messages the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cosa_guard.types import ROLES, Message

__all__ = ["from_langchain", "message_text"]

# LangChain message types onto cosa_guard roles; anything unknown counts as a user turn, so the
# input guard scans it rather than trusting it.
_ROLE_OF_TYPE = {
    "system": "system",
    "developer": "system",
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
}


def message_text(message: Any) -> str:
    """The text a judge should read: the content's text parts, then one line per tool call."""
    text = str(message.text)
    calls = [
        f"tool_call: {call['name']} {json.dumps(call.get('args', {}), ensure_ascii=False, sort_keys=True)}"
        for call in getattr(message, "tool_calls", None) or ()
    ]
    return "\n".join([text, *calls] if text else calls)


def from_langchain(messages: Sequence[Any]) -> tuple[Message, ...]:
    """LangChain messages as cosa_guard messages; tool calls of AI turns kept as text (`message_text`)."""
    out = []
    for message in messages:
        role = _ROLE_OF_TYPE.get(message.type)
        if message.type == "chat":  # ChatMessage carries a free-form role
            custom = str(getattr(message, "role", "user"))
            role = "system" if custom == "developer" else custom if custom in ROLES else "user"
        out.append(
            Message(
                role=role or "user",  # type: ignore[arg-type]
                content=message_text(message),
                name=message.name,
                tool_call_id=getattr(message, "tool_call_id", None),
            )
        )
    return tuple(out)
