"""Requests the guard answers itself, before any check or model runs: too large, or unsendable text.

A turn over `limits.max_turn_chars` (or a request over `max_request_chars`) would keep the
injection checks busy and a model slot taken for a long time; a lone surrogate cannot be encoded
for any model server. Both are the client's doing, so the guard answers them at once
(`failed:too_large`, `failed:invalid_request`: the server's 413 and 400) and they never reach an
upstream, where a rejection used to count against the breaker every other client depends on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cosa_guard.settings import LimitsSpec
from cosa_guard.types import Decision, FailureKind, Message

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_request(messages: Sequence[Message], limits: LimitsSpec) -> Decision | None:
    """The decision for a request that must not be served, or None. Details hold no client text."""
    total = 0
    for index, message in enumerate(messages):
        size = len(message.content)
        if size > limits.max_turn_chars:
            return Decision.failed(
                FailureKind.TOO_LARGE,
                f"messages[{index}] has {size} characters; limits.max_turn_chars is {limits.max_turn_chars}",
            )
        total += size
        for text in (message.content, message.name, message.tool_call_id):
            if text and not text.isascii() and _SURROGATE.search(text):
                return Decision.failed(
                    FailureKind.INVALID_REQUEST,
                    f"messages[{index}] is not valid Unicode text: it holds a lone surrogate",
                )
    if total > limits.max_request_chars:
        return Decision.failed(
            FailureKind.TOO_LARGE,
            f"the messages have {total} characters; limits.max_request_chars is {limits.max_request_chars}",
        )
    return None
