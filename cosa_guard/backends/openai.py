"""Any OpenAI-compatible chat endpoint (`vllm serve`, llama.cpp server, OpenAI, ...) over httpx.

One httpx transport per backend and event loop (`_per_loop`) keeps connections alive across
calls: aiohttp's (`_aiohttp_transport`, a C parser; when aiohttp is installed) or httpcore's behind
a pool that stays flat under many concurrent calls (`_http_pool`; httpx's default one stalls,
encode/httpx#3215). Requests go to the transport directly: `httpx.AsyncClient`'s cookie, auth and
redirect machinery cost ~150 µs a call and a chat API needs none of it.
The server applies `stop`; the backend cuts at a stop string too, holding back a streamed piece's
end while it could start one (`_stops.StopBuffer`), so a server that ignores `stop` (or takes fewer
stop strings than sent) never releases one either: the answer ends there with finish_reason `stop`.
Retries happen only where the request cannot have been processed: the connection failed, or the
server answered 429 / 502 / 503 before sending any body. Once a response body has started,
nothing is retried, because the model may already have produced (and the caller seen) part of
an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from cosa_guard.backends._aiohttp_transport import AiohttpTransport, aiohttp_available, aiohttp_module
from cosa_guard.backends._http_pool import PooledTransport
from cosa_guard.backends._per_loop import PerLoopTransport
from cosa_guard.backends._stops import StopBuffer, cut_completion
from cosa_guard.backends.base import Backend
from cosa_guard.errors import (
    BackendError,
    BackendRequestError,
    BackendTimeoutError,
    DeploymentError,
    status_error,
)
from cosa_guard.types import Chunk, Completion, GenerationParams, Message, Usage

__all__ = ["HTTP_CLIENTS", "RETRY_STATUSES", "OpenAIBackend"]

HTTP_CLIENTS = ("auto", "aiohttp", "httpx")

RETRY_STATUSES = frozenset({429, 502, 503})
_TOP_LOGPROBS = 20  # the most OpenAI accepts; vLLM follows it
_MAX_RETRY_AFTER_S = 5.0  # never sleep longer than this on a server's Retry-After
_FINISH_BODY_S = 0.25  # how long the body's end may lag behind [DONE] before the connection is dropped


class OpenAIBackend(Backend):
    """A chat model behind `POST {base_url}/chat/completions`.

    `timeout_s` bounds each network phase (connect, each read, write) and the whole non-streamed
    call; a stream may run longer as long as bytes keep coming. `max_retries` counts extra
    attempts on the safe failures above, with jittered exponential backoff from `backoff_s`.
    `max_connections` bounds the calls in flight on each event loop; more wait for a connection (up
    to `timeout_s`). Connections belong to the loop that opened them, so each loop gets its own pool.
    `http` picks the transport: `aiohttp` (fastest), `httpx` (httpcore, pure Python) or `auto`
    (aiohttp when installed); `transport` overrides it (tests pass an `httpx.MockTransport`).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        name: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        max_connections: int = 100,
        headers: Mapping[str, str] | None = None,
        http: str = "auto",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self.name = name or f"openai:{model}"
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        all_headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "cosa-guard",
            **(headers or {}),
        }
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        self._headers = httpx.Headers(all_headers)
        self._url = httpx.URL(base_url.rstrip("/") + "/chat/completions")  # parsed once, not per call
        self._timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        self._transport = transport or _transport(http, max_connections)

    @classmethod
    def from_options(
        cls,
        model: str,
        *,
        base_url: str | None,
        api_key_env: str | None,
        timeout_s: float,
        options: Mapping[str, Any],
    ) -> OpenAIBackend:
        """Build from a BackendSpec's fields; the key is read from the environment, never from the file."""
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise DeploymentError(
                    f"environment variable {api_key_env} (api_key_env of the openai backend for {model!r}) "
                    "is not set; export the upstream API key in it"
                )
        kwargs: dict[str, Any] = dict(options)
        if base_url:
            kwargs["base_url"] = base_url
        return cls(model, api_key=api_key, timeout_s=timeout_s, **kwargs)

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _body(self, messages: Sequence[Message], params: GenerationParams, **fixed: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [m.to_dict() for m in messages]}
        for key in ("max_tokens", "temperature", "top_p", "seed"):
            value = getattr(params, key)
            if value is not None:
                body[key] = value
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(params.extra)  # server-specific options, e.g. vLLM's top_k or repetition_penalty
        body.update(fixed)
        return body

    @asynccontextmanager
    async def _response(self, body: dict[str, Any], *, stream: bool) -> AsyncIterator[httpx.Response]:
        """Open a response whose status is 2xx, retrying only the failures that are safe to retry."""
        content = _encode(body)
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                request = httpx.Request(
                    "POST",
                    self._url,
                    headers=self._headers,
                    content=content,
                    extensions={"timeout": self._timeouts},
                )
                response = await self._transport.handle_async_request(request)
                response.request = request
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.max_retries:
                    raise _translate(exc, self._url) from exc
            except httpx.HTTPError as exc:
                raise _translate(exc, self._url) from exc
            else:
                if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                    retry_after = _retry_after(response)
                    await response.aclose()  # nothing of this response was read: the retry is safe
                else:
                    try:
                        if response.status_code >= 400:
                            await response.aread()
                            raise _status_error(response)
                        if not stream:
                            await response.aread()
                        yield response
                        return
                    except httpx.HTTPError as exc:
                        raise _translate(exc, self._url) from exc
                    finally:
                        await response.aclose()
            attempt += 1
            delay = self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
            await asyncio.sleep(retry_after if retry_after is not None else delay)

    async def _post_json(self, body: dict[str, Any]) -> Any:
        """One non-streamed call, bounded as a whole by `timeout_s` (retries included)."""

        try:
            async with asyncio.timeout(self.timeout_s):  # no extra task per call, unlike wait_for
                async with self._response(body, stream=False) as response:
                    return _json(response.content)
        except BackendError:
            raise
        except TimeoutError as exc:
            raise BackendTimeoutError(f"{self.name}: no answer within {self.timeout_s:g} s") from exc

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        data = await self._post_json(self._body(messages, params, stream=False))
        return cut_completion(_completion(data, self.model), params.stop)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]:
        body = self._body(messages, params, stream=True)
        stops = StopBuffer(params.stop)
        async with self._response(body, stream=True) as response:
            finished = False
            events = _sse_events(response.aiter_lines())
            try:
                async for data in events:
                    if data == "[DONE]":
                        if held := stops.flush():
                            yield Chunk(held)
                        await _finish_body(events)
                        return
                    for chunk in _chunks(_json(data)):
                        text = stops.feed(chunk.text)
                        if stops.stopped:  # the server sent text past a stop string: end the answer here
                            yield Chunk(text, finish_reason="stop")
                            return
                        if chunk.finish_reason is not None:
                            finished = True
                            text += stops.flush()
                        if text or chunk.finish_reason:
                            yield Chunk(text, finish_reason=chunk.finish_reason)
            except httpx.HTTPError as exc:
                raise _translate(exc, self._url) from exc
            if not finished:  # a cut stream is a failure, not a short answer
                raise BackendError(f"{self.name}: the stream ended before [DONE] or a finish_reason")

    async def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        """Natural-log probability of each candidate as the next token (greedy, one token).

        Several tokens can spell one candidate (`"Yes"`, `" Yes"`): their probabilities are summed.
        A candidate outside the server's top 20 is left out (the `LogprobBackend` contract).
        """
        body = self._body(
            messages,
            GenerationParams(),
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=_TOP_LOGPROBS,
            stream=False,
        )
        data = await self._post_json(body)
        try:
            top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            pairs = [(str(item["token"]), float(item["logprob"])) for item in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(
                f"{self.name}: the server returned no top_logprobs (does it support them?)"
            ) from exc
        return match_candidates(pairs, candidates)


def _transport(http: str, max_connections: int) -> httpx.AsyncBaseTransport:
    if http not in HTTP_CLIENTS:
        raise DeploymentError(f"openai backend: http must be one of {', '.join(HTTP_CLIENTS)}, got {http!r}")
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    if http == "aiohttp" or (http == "auto" and aiohttp_available()):
        aiohttp_module()  # a missing extra fails at load, not on the first call
        return PerLoopTransport(lambda: AiohttpTransport(limits=limits))
    return PerLoopTransport(lambda: PooledTransport(limits=limits))


def match_candidates(pairs: Sequence[tuple[str, float]], candidates: Sequence[str]) -> dict[str, float]:
    """Fold (token text, logprob) pairs onto candidates by whitespace-stripped equality (log-sum-exp)."""
    out: dict[str, float] = {}
    for candidate in candidates:
        logprobs = [lp for token, lp in pairs if token.strip() == candidate.strip()]
        if not logprobs:
            continue
        peak = max(logprobs)
        out[candidate] = peak + math.log(sum(math.exp(lp - peak) for lp in logprobs))
    return out


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` payload of each server-sent event; multi-line data joined with newlines."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # comments (":...") and event/id/retry fields carry nothing for chat completions
    if data:
        yield "\n".join(data)


async def _finish_body(events: AsyncIterator[str]) -> None:
    """Read what follows [DONE] (normally just the body's end) so the connection can be reused.

    A response closed before its end takes its connection with it: every streamed call would pay a
    new TCP (and TLS) handshake. The answer is complete already, so a server that keeps the body
    open, or fails now, only costs that connection.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(_FINISH_BODY_S):
            async for _ in events:
                pass


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackendError(f"the server sent malformed JSON: {_clip(raw)!r}") from exc


def _completion(data: Any, model: str) -> Completion:
    _raise_error_payload(data)
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BackendError(f"unexpected chat completion shape: {_clip(json.dumps(data))!r}") from exc
    usage = data.get("usage") or {}
    return Completion(
        text=str(text),
        model=str(data.get("model") or model),
        finish_reason=str(finish),
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        if usage
        else None,
    )


def _chunks(data: Any) -> list[Chunk]:
    _raise_error_payload(data)
    try:
        choices = data["choices"]
        out = []
        for choice in choices[:1]:  # one answer per call; n > 1 is not part of the protocol
            text = (choice.get("delta") or {}).get("content") or ""
            finish = choice.get("finish_reason")
            if text or finish:
                out.append(Chunk(str(text), finish_reason=str(finish) if finish else None))
        return out
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackendError(f"unexpected stream chunk shape: {_clip(json.dumps(data))!r}") from exc


def _raise_error_payload(data: Any) -> None:
    # vLLM and OpenAI report mid-stream failures as a JSON object with an "error" member.
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise BackendError(f"the server reported an error: {message}")


def _encode(body: dict[str, Any]) -> bytes:
    """The request body as JSON bytes; text no server could receive is this request's fault."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (UnicodeEncodeError, ValueError) as exc:  # a lone surrogate; NaN or infinity in a parameter
        raise BackendRequestError(f"the request cannot be encoded as JSON: {exc}") from exc


def _translate(exc: httpx.HTTPError, url: httpx.URL) -> BackendError:
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeoutError(f"{type(exc).__name__} talking to {url}: {exc}")
    return BackendError(f"{type(exc).__name__} talking to {url}: {exc}")


def _status_error(response: httpx.Response) -> BackendError:
    """The error for a non-2xx answer. Its message quotes the body: for the detail log, never a decision."""
    detail = response.text
    try:
        error = response.json().get("error")
        detail = error.get("message", detail) if isinstance(error, dict) else str(error or detail)
    except (ValueError, AttributeError):
        pass
    return status_error(
        f"HTTP {response.status_code} from {response.request.url}: {_clip(detail)}", response.status_code
    )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(max(float(response.headers["retry-after"]), 0.0), _MAX_RETRY_AFTER_S)
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to our own backoff


def _clip(text: bytes | str, limit: int = 200) -> str:
    s = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return s if len(s) <= limit else s[:limit] + "..."
