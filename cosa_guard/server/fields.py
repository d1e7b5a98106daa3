"""Which chat-completions fields the server honours, and a 400 naming each one it cannot.

A guarded answer is text that the guard may replace with the deployment's refusal, so a field
that asks for something else (tool calls, JSON output, log-probabilities, audio, images) cannot
be honoured, and saying so beats answering as if it had been. Every field OpenAI defines is
either honoured (`ChatRequest`), accepted because it cannot change the answer (`_NO_EFFECT`), or
refused with a 400 naming it unless it holds its default (`_REFUSED`). A field OpenAI does not
define is refused too, as OpenAI itself does: a typo or another vendor's option never passes as
if it had been applied. The table in docs/server.md lists the same.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from cosa_guard.server.errors import ApiError

# Labels for the client's own bookkeeping, or options whose subject (tools) is refused anyway.
_NO_EFFECT = frozenset(
    {"user", "metadata", "safety_identifier", "prompt_cache_key", "service_tier", "parallel_tool_calls"}
)

_TEXT_ONLY = "this endpoint returns guarded text only"
_REPLACED = "the guard may replace any answer with the deployment's plain-text refusal"


def _unset(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _none_or(*defaults: Any) -> Callable[[Any], bool]:
    return lambda value: value is None or any(value == d for d in defaults)


def _text_format(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping) and value.get("type") == "text")


# name -> (holds its default, why any other value is refused)
_REFUSED: Mapping[str, tuple[Callable[[Any], bool], str]] = {
    "tools": (_unset, f"tools are not supported: {_TEXT_ONLY}"),
    "tool_choice": (_none_or("none"), f"tool_choice other than 'none' is not supported: {_TEXT_ONLY}"),
    "functions": (_unset, f"functions are not supported: {_TEXT_ONLY}"),
    "function_call": (_none_or("none"), f"function_call is not supported: {_TEXT_ONLY}"),
    "response_format": (
        _text_format,
        f"only response_format {{'type': 'text'}} is supported: {_REPLACED}, which no JSON format or "
        "schema can promise",
    ),
    "logprobs": (_none_or(False), f"logprobs are not supported: {_REPLACED}, whose tokens no model scored"),
    "top_logprobs": (
        _none_or(0),
        f"top_logprobs are not supported: {_REPLACED}, whose tokens no model scored",
    ),
    "audio": (_unset, f"audio output is not supported: {_TEXT_ONLY}"),
    "modalities": (_none_or(["text"]), f"only modalities ['text'] are supported: {_TEXT_ONLY}"),
    "prediction": (_unset, "predicted outputs are not supported"),
    "web_search_options": (_unset, "web search is not supported"),
    "frequency_penalty": (_none_or(0), "frequency_penalty is not supported by the guarded backends"),
    "presence_penalty": (_none_or(0), "presence_penalty is not supported by the guarded backends"),
    "logit_bias": (_unset, "logit_bias is not supported by the guarded backends"),
    "reasoning_effort": (_unset, "reasoning_effort is not supported by the guarded backends"),
    "verbosity": (_unset, "verbosity is not supported by the guarded backends"),
    "store": (_none_or(False), "store is not supported: calls are recorded in the deployment's audit log"),
}


def check_fields(data: Mapping[str, Any], honoured: Collection[str]) -> None:
    """400 for the first field that would otherwise be ignored; `honoured` are the ones the server applies."""
    for name, value in data.items():
        if name in honoured or name in _NO_EFFECT:
            continue
        rule = _REFUSED.get(name)
        if rule is None:
            raise ApiError(
                400,
                f"unrecognized request argument supplied: {name}",
                param=name,
                code="unknown_parameter",
            )
        is_default, why = rule
        if not is_default(value):
            raise ApiError(400, why, param=name, code="unsupported_parameter")


# Message fields the models behind the guard never see: dropping them would answer a different question.
_MESSAGE_FIELDS_REFUSED = ("tool_calls", "function_call", "audio")


def check_message(index: int, message: Mapping[str, Any]) -> None:
    """400 for an image, audio or file part, or a tool call or audio reference: the guarded models read
    text only, and anything dropped before the model would be answered as if it had never been sent."""
    for name in _MESSAGE_FIELDS_REFUSED:
        if not _unset(message.get(name)):
            raise ApiError(
                400,
                f"messages[{index}].{name} is not supported: {_TEXT_ONLY}",
                param=f"messages.{index}.{name}",
                code="unsupported_content",
            )
    content = message.get("content")
    if not isinstance(content, list):
        return
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind != "text":
            shown = repr(kind) if isinstance(kind, str) else "an untyped"
            raise ApiError(
                400,
                f"messages[{index}].content[{position}] is {shown} part: only 'text' parts are supported "
                "(the guarded models read text only)",
                param=f"messages.{index}.content.{position}",
                code="unsupported_content",
            )
