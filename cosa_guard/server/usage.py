"""The `usage` of a guarded answer: tokens counted for what the client sent and what it got back.

- `prompt_tokens`: what the model that answered reported for its prompt (which includes the
  deployment's system prompt); when it reported nothing (streams, backends without usage, calls
  answered before any model ran) an estimate over the client's messages.
- `completion_tokens`: what that model reported when the answer returned is its own text; an
  estimate over the text returned otherwise: the refusal that replaced a blocked answer (the
  blocked answer's tokens are not the client's), or everything a stream carried.
- `estimated`: true when either count is an estimate.

An estimate is a quarter of the text's UTF-8 bytes, rounded up: about right for English and
code with the common BPE tokenizers, an overestimate for most other scripts. Judge calls are not
counted: they are the guard's cost, not the answer's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from cosa_guard.types import GuardResponse, Message

_BYTES_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / _BYTES_PER_TOKEN)


def _prompt_estimate(messages: Iterable[Message]) -> int:
    return sum(estimate_tokens(m.content) for m in messages)


def usage_body(prompt_tokens: int, completion_tokens: int, *, estimated: bool) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "estimated": estimated,
    }


def answer_usage(response: GuardResponse, messages: Iterable[Message]) -> dict[str, Any]:
    """Usage of a plain (non-streamed) answer, whose content is `response.text`."""
    reported = response.usage
    if reported is not None and reported.prompt_tokens:
        prompt, prompt_estimated = reported.prompt_tokens, False
    else:
        prompt, prompt_estimated = _prompt_estimate(messages), True
    if reported is not None and response.decision.is_allowed:
        return usage_body(prompt, reported.completion_tokens, estimated=prompt_estimated)
    return usage_body(prompt, estimate_tokens(response.text), estimated=True)


def stream_usage(messages: Iterable[Message], streamed: str) -> dict[str, Any]:
    """Usage of a stream: backends report none for streams, so both counts are estimates."""
    return usage_body(_prompt_estimate(messages), estimate_tokens(streamed), estimated=True)
