"""The OpenAI-compatible HTTP server: chat completions (plain and SSE), models, health, readiness, metrics.

    app = create_app(Guard.from_file("deployments.yaml"))
    uvicorn.run(app, host="127.0.0.1", port=8080)

The bearer API key selects the deployment; nothing in a request body can choose or change a
config (`model` may only name the key's own deployment). Every error has OpenAI's shape, so the
`openai` SDK and LangChain's ChatOpenAI raise their usual exception classes. The deployments are
reloaded through `guard.reload()` on SIGHUP and when a watched file changes; a config that fails
to verify never replaces the last good one (the registry guarantees it, this module only asks).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from cosa_guard import utf8
from cosa_guard._optional import require
from cosa_guard.audit import AuditHealth, AuditRecord, AuditSink, sink_health
from cosa_guard.deployments import LoadedDeployment, ReloadReport
from cosa_guard.errors import CosaGuardError, IncompleteStreamError, MissingExtraError, UnknownDeploymentError
from cosa_guard.failures import describe, log_detail
from cosa_guard.metrics import exposition
from cosa_guard.server.admission import KeySlots, ReleaseSlot
from cosa_guard.server.cors import add_cors
from cosa_guard.server.errors import ApiError, guard_failure, unauthorized
from cosa_guard.server.probes import READY_STATE, readyz
from cosa_guard.server.request_ids import RequestIds
from cosa_guard.server.usage import answer_usage, stream_usage
from cosa_guard.server.wire import (
    ChunkWriter,
    completion_body,
    decision_headers,
    decision_payload,
    fingerprint,
    finish_reason,
    parse_request,
)
from cosa_guard.streaming import StreamedAnswer, StreamFold
from cosa_guard.types import DecisionKind, GenerationParams, GuardResponse, Message, StreamEvent

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the install
    raise MissingExtraError(exc.name or "fastapi", "server", "the OpenAI-compatible server") from exc

logger = logging.getLogger("cosa_guard.server")

T = TypeVar("T")

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_BODY_TIMEOUT_S = 30.0
_CLIENT_GONE = 499  # nginx's "client closed request": nobody reads it, but the access log shows why
_JSON_TYPES = ("application/json",)
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _no_decision() -> ApiError:
    return ApiError(500, "the guard ended the stream without a decision", type="server_error")


class _Registry(Protocol):
    def ids(self) -> tuple[str, ...]: ...

    def changed_on_disk(self) -> bool: ...


class GuardLike(Protocol):
    """What the server needs from `cosa_guard.guard.Guard`."""

    @property
    def registry(self) -> _Registry: ...

    def by_api_key(self, api_key: str) -> LoadedDeployment: ...

    async def chat(
        self, deployment_id: str, messages: Sequence[Message], params: GenerationParams, *, request_id: str
    ) -> GuardResponse: ...

    def stream(
        self, deployment_id: str, messages: Sequence[Message], params: GenerationParams, *, request_id: str
    ) -> AsyncGenerator[StreamEvent, None]: ...

    async def warm_up(self) -> None: ...

    async def reload(self) -> ReloadReport: ...

    def unservable(self) -> Mapping[str, str]: ...

    def audit_health(self) -> Sequence[AuditHealth]: ...

    async def aclose(self) -> None: ...


def create_app(
    guard: GuardLike,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    watch_interval_s: float | None = 2.0,
    reload_on_sighup: bool = True,
    close_guard: bool = False,
    audit: AuditSink | None = None,
    close_audit: bool = False,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """A FastAPI app serving `guard`.

    `max_body_bytes` and `body_timeout_s`: a request body must be at most this large (else 413)
    and arrive within this time (else 408), so that a slow or huge upload cannot hold a connection.
    `watch_interval_s`: poll the deployments file and its bundles and reload on change (None: off).
    `reload_on_sighup`: reload on SIGHUP (only when the server runs in the main thread, as uvicorn does).
    `close_guard`: `await guard.aclose()` at shutdown, for callers that hand the guard over.
    `audit`: also record requests refused before they reach the guard (bad key, malformed body, wrong
    model, ...); the guard records every call that reaches it in its deployments' audit files.
    `close_audit`: close `audit` at shutdown, for callers that hand it over.
    `cors_origins`: browser origins allowed to call the server (`*` for any); none by default.
    """
    reloader = _Reloader(guard)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await guard.warm_up()  # local models load now, before the server reports ready
        watcher = asyncio.create_task(reloader.watch(watch_interval_s)) if watch_interval_s else None
        sighup = reload_on_sighup and _install_sighup(reloader)
        setattr(_app.state, READY_STATE, True)
        try:
            yield
        finally:
            setattr(_app.state, READY_STATE, False)
            if sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if close_guard:
                await guard.aclose()
            if close_audit and audit is not None:
                await asyncio.to_thread(audit.close)

    app = FastAPI(
        title="cosa-guard",
        summary="OpenAI-compatible chat completions behind a signed, per-deployment safety config",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.guard = guard
    app.state.reloader = reloader
    app.state.key_slots = slots = KeySlots()
    _install_error_handlers(app, audit)
    app.add_middleware(RequestIds)
    if cors_origins:
        add_cors(app, cors_origins)

    async def chat_completions(request: Request) -> Response:
        request.state.started = time.perf_counter()
        key = _bearer_key(request)
        deployment = _deployment_for(guard, request, key)
        limit = deployment.spec.limits.max_concurrency_per_key
        if not slots.acquire(request.scope, key, limit):  # ReleaseSlot gives it back
            raise _busy(limit)
        chat, messages = parse_request(await _read_json(request, max_body_bytes, body_timeout_s))
        model = _check_model(chat.model, deployment)
        params = chat.guard_params()
        request_id: str = request.state.request_id
        request.state.guarded = True  # from here on the guard writes the audit record
        if chat.stream:
            writer = ChunkWriter(
                model,
                fingerprint(deployment.config_hash),
                request_id=request_id,
                include_usage=chat.include_usage,
            )
            return await _stream(request, guard, deployment, messages, params, writer)
        call = guard.chat(deployment.id, messages, params, request_id=request_id)
        response = await _unless_disconnected(request, call)
        if response is None:
            return Response(status_code=_CLIENT_GONE)
        if response.decision.kind is DecisionKind.FAILED:
            raise guard_failure(response, decision_payload(response))
        return _json(
            completion_body(response, model, answer_usage(response, messages)),
            headers=decision_headers(response),
        )

    async def list_models(request: Request) -> Response:
        request.state.started = time.perf_counter()
        deployment = _authenticate(guard, request)
        return JSONResponse({"object": "list", "data": [_model_card(deployment)]})

    async def get_model(request: Request) -> Response:
        request.state.started = time.perf_counter()
        deployment = _authenticate(guard, request)
        _check_model(request.path_params["model"], deployment)
        return JSONResponse(_model_card(deployment))

    async def healthz(_request: Request) -> Response:
        return JSONResponse(*_health(guard, reloader, audit))

    async def metrics(_request: Request) -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    # Plain Starlette routes: the endpoints read the request themselves, so FastAPI's dependency
    # solving would only add per-request work (about a fifth of the server's CPU per call).
    app.router.routes.append(
        Route(
            "/v1/chat/completions",
            chat_completions,
            methods=["POST"],
            middleware=[Middleware(ReleaseSlot, slots=slots)],
        )
    )
    app.router.add_route("/v1/models", list_models, methods=["GET"])
    app.router.add_route("/v1/models/{model}", get_model, methods=["GET"])
    app.router.add_route("/healthz", healthz, methods=["GET"])
    app.router.add_route("/readyz", readyz, methods=["GET"])
    app.router.add_route("/metrics", metrics, methods=["GET"])
    return app


def _health(guard: GuardLike, reloader: _Reloader, audit: AuditSink | None) -> tuple[dict[str, Any], int]:
    """/healthz: `ok`; `degraded` (200) while a deployment fails every call (`unservable`: an expired
    config, a required audit log that cannot be written) or an audit file fails; 503 when nothing
    can be served. Ids, file names and OS error texts only: the endpoint needs no key."""
    count = len(guard.registry.ids())
    unservable = dict(guard.unservable())
    audits = list(guard.audit_health())
    own = sink_health(audit) if audit is not None else None
    if own is not None:
        audits.append(own)
    if not count:
        status = "no deployments"
    elif unservable or not all(h.ok for h in audits):
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        "deployments": count,
        "unservable": unservable,
        "audit": [_audit_status(h) for h in audits],
        "last_reload": reloader.last,
    }
    return body, 503 if count == len(unservable) else 200


def _audit_status(health: AuditHealth) -> dict[str, Any]:
    return {
        "sink": health.sink,
        "ok": health.ok,
        "written": health.written,
        "dropped": health.dropped,
        "write_errors": health.write_errors,
        "backlog": health.backlog,
        "error": health.error or None,
    }


# --- Requests --------------------------------------------------------------------------------------


def _authenticate(guard: GuardLike, request: Request) -> LoadedDeployment:
    return _deployment_for(guard, request, _bearer_key(request))


def _bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise unauthorized(
            "no API key: send the deployment's key as 'Authorization: Bearer <key>' "
            "(the openai SDK does this with api_key=...)"
        )
    return key


def _deployment_for(guard: GuardLike, request: Request, key: str) -> LoadedDeployment:
    try:
        deployment = guard.by_api_key(key)
    except UnknownDeploymentError:
        raise unauthorized("incorrect API key: it matches no deployment served here") from None
    request.state.deployment = deployment
    return deployment


async def _read_json(request: Request, limit: int, timeout_s: float) -> Any:
    """The body as JSON. At most `limit` bytes are read, within `timeout_s`: an oversize or slow body
    is refused, never buffered or waited for."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise ApiError(
            415,
            f"unsupported content type {content_type or '(none)'!r}: send the request as application/json",
            code="unsupported_media_type",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for part in request.stream():
                body += part
                if len(body) > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise ApiError(
            408, f"the request body did not arrive within {timeout_s:g} s", code="request_timeout"
        ) from None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:  # the C parser's recursion guard: no chat request nests anywhere near it
        raise ApiError(400, "the request body is nested too deeply", code="invalid_json") from None


def _busy(limit: int | None) -> ApiError:
    return ApiError(
        429,
        f"this API key already has {limit} calls in flight (limits.max_concurrency_per_key of its "
        "deployment); retry when one has finished",
        type="requests",
        code="rate_limit_exceeded",
    )


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"the request body is larger than this server accepts ({limit} bytes)", code="too_large"
    )


def _check_model(model: str | None, deployment: LoadedDeployment) -> str:
    """A request may name its key's deployment as `model`, or leave it empty; never anything else."""
    if model and model != deployment.id:
        raise ApiError(
            404,
            f"the model {model!r} does not exist or this API key cannot use it; "
            f"this key serves {deployment.id!r}",
            type="invalid_request_error",
            param="model",
            code="model_not_found",
        )
    return deployment.id


def _model_card(deployment: LoadedDeployment) -> dict[str, Any]:
    return {"id": deployment.id, "object": "model", "created": 0, "owned_by": "cosa-guard"}


# --- Streaming -------------------------------------------------------------------------------------


async def _stream(
    request: Request,
    guard: GuardLike,
    deployment: LoadedDeployment,
    messages: Sequence[Message],
    params: GenerationParams,
    writer: ChunkWriter,
) -> Response:
    """Read up to the first released text before answering, so that a call that fails before releasing
    anything gets a real error status (503/504) rather than a 200 stream."""
    fold = StreamFold(guard.stream(deployment.id, messages, params, request_id=request.state.request_id))
    texts = fold.texts()
    try:
        first = await _unless_disconnected(request, anext(texts, ""))
    except BaseException:
        await fold.aclose()
        raise
    if first is None:
        await fold.aclose()
        return Response(status_code=_CLIENT_GONE)
    if not first:
        await fold.aclose()
        answer = _answer(fold)
        if answer.response.decision.kind is DecisionKind.FAILED:
            raise guard_failure(answer.response, decision_payload(answer.response))
    body = _sse(first, texts, fold, writer, messages)
    return StreamingResponse(body, media_type="text/event-stream", headers=_SSE_HEADERS)


def _answer(fold: StreamFold) -> StreamedAnswer:
    try:
        return fold.answer()
    except IncompleteStreamError:
        raise _no_decision() from None


async def _sse(
    first: str,
    texts: AsyncIterator[str],
    fold: StreamFold,
    writer: ChunkWriter,
    messages: Sequence[Message],
) -> AsyncIterator[bytes]:
    """Guard events as `chat.completion.chunk` server-sent events, ending with `data: [DONE]`;
    before it the usage chunk when the client asked for one (`stream_options.include_usage`).

    When the client goes away Starlette cancels this generator; closing the fold then cancels the
    generation, and the guard writes its audit record on the way out.
    """
    try:
        yield _event(writer.chunk({"role": "assistant", "content": ""}))
        if first:
            yield _event(writer.chunk({"content": first}))
            async for text in texts:
                yield _event(writer.chunk({"content": text}))
        answer = fold.answer()
        final = _final_chunk(writer, answer)
        yield _event(final)
        if writer.include_usage and "error" not in final:
            yield _event(writer.usage_chunk(stream_usage(messages, answer.released + _content(final))))
    except IncompleteStreamError:
        # A stream must end with a decision; without one the answer was never fully checked.
        yield _event(_no_decision().body())
    except Exception as exc:  # the response has started: the SDKs raise on an `error` event
        logger.error("guard stream %s failed: %s", writer.id, describe(exc))
        log_detail(writer.id, "guard stream", exc)
        yield _event(ApiError(500, "the guarded stream failed", type="server_error").body())
    finally:
        await fold.aclose()
    yield b"data: [DONE]\n\n"


def _final_chunk(writer: ChunkWriter, answer: StreamedAnswer) -> dict[str, Any]:
    response = answer.response
    payload = decision_payload(response)
    if response.decision.kind is DecisionKind.FAILED:
        # Text already released stays released; the SDKs raise on an `error` event, so the caller knows.
        error = guard_failure(response, payload)
        return error.body()
    delta: dict[str, str] = {"content": answer.closing} if answer.closing else {}
    if answer.retracted:
        # Clients that know cosa_guard drop what they showed; others at least see the refusal and the reason.
        payload["retracted"] = True
    finish = "content_filter" if answer.retracted else finish_reason(response)
    return writer.chunk(
        delta,
        finish=finish,
        extra={"cosa_guard": payload},
        fingerprint=fingerprint(response.config_hash, response),
    )


def _content(chunk: Mapping[str, Any]) -> str:
    content: str = chunk["choices"][0]["delta"].get("content", "")
    return content


def _event(body: Mapping[str, Any]) -> bytes:
    return b"data: " + utf8.encode(json.dumps(body, ensure_ascii=False, separators=(",", ":"))) + b"\n\n"


def _json(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    """JSONResponse, except that text UTF-8 cannot carry is sent as U+FFFD instead of failing the response."""
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))  # as JSONResponse
    return Response(utf8.encode(text), media_type="application/json", headers=headers)


# --- Client disconnects ---------------------------------------------------------------------------


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await `work`, cancelling it if the client disconnects first (then None).

    A plain request is otherwise served to the end after its client has gone, keeping a model
    busy for nobody; cancelled, the guard stops generating and records the call as `cancelled`.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return None
    return task.result()


async def _disconnect(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or never comes).
    while (await request.receive())["type"] != "http.disconnect":
        pass


# --- Errors ----------------------------------------------------------------------------------------


def _error_response(error: ApiError) -> Response:
    return Response(
        error.encode(), status_code=error.status, media_type="application/json", headers=error.headers
    )


def _install_error_handlers(app: FastAPI, audit: AuditSink | None) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        _count_rejection(exc)
        if audit is not None and not getattr(request.state, "guarded", False):
            audit.emit(_rejection_record(request, exc))
        return _error_response(exc)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        error = ApiError(exc.status_code, str(exc.detail), code=code)
        _count_rejection(error)
        return _error_response(error)

    @app.exception_handler(CosaGuardError)
    async def guard_error(_request: Request, exc: CosaGuardError) -> Response:
        # The guard reports outcomes as decisions; an exception here is a bug or a config gone missing.
        # Its text stays in the logs: it may name files and settings no client should see.
        logger.error("guard raised instead of deciding: %s", exc, exc_info=exc)
        error = ApiError(503, "the guard could not serve this request", type="server_error")
        _count_rejection(error)
        return _error_response(error)


def _rejection_record(request: Request, error: ApiError) -> AuditRecord:
    deployment: LoadedDeployment | None = getattr(request.state, "deployment", None)
    started: float | None = getattr(request.state, "started", None)
    return AuditRecord(
        ts=time.time(),
        request_id=request.state.request_id,
        deployment=deployment.id if deployment is not None else "",
        config_hash=deployment.config_hash if deployment is not None else "",
        decision=f"rejected:{error.code or error.status}",
        route="none",
        latency_ms=(time.perf_counter() - started) * 1000.0 if started is not None else 0.0,
        detail=f"{error.status} {request.method} {request.url.path}: {error.message}",
    )


@functools.cache
def _rejections() -> Any:
    """`cosa_guard_http_rejected_total{status,code}`: error answers; None without prometheus_client."""
    try:
        prom = require("prometheus_client", "server", "server metrics")
    except MissingExtraError:
        return None
    return prom.Counter(
        "http_rejected", "Requests answered with an error", ["status", "code"], namespace="cosa_guard"
    )


def _count_rejection(error: ApiError) -> None:
    counter = _rejections()
    if counter is not None:
        counter.labels(str(error.status), error.code or "").inc()


# --- Reload ----------------------------------------------------------------------------------------


def _reload_record(trigger: str, report: ReloadReport) -> dict[str, Any]:
    """How a load went, for /healthz: ids only, since it needs no key and the reasons (in the log)
    name files and keys."""
    return {
        "trigger": trigger,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ok": report.ok,
        "loaded": list(report.loaded),
        "kept": sorted(report.kept),
        "failed": sorted(report.failed),
    }


class _Reloader:
    """Serialises reloads from SIGHUP and the file watcher; remembers how the last one went."""

    def __init__(self, guard: GuardLike) -> None:
        self._guard = guard
        self._lock = asyncio.Lock()
        # The load this process started with counts as the first: a worker that a SIGHUP rolling
        # restart started shows when it loaded, where a reload in place shows when it reloaded.
        self.last = _reload_record("start", ReloadReport(loaded=tuple(sorted(guard.registry.ids()))))

    async def reload(self, why: str) -> ReloadReport:
        async with self._lock:
            report = await self._guard.reload()
        self.last = _reload_record(why, report)
        if report.ok:
            logger.info("deployments reloaded (%s): %s", why, ", ".join(report.loaded) or "none")
        else:
            logger.warning(
                "deployments reloaded (%s) with problems; last good configs kept: %s; not loaded: %s",
                why,
                report.kept,
                report.failed,
            )
        return report

    async def watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                changed = await asyncio.to_thread(self._guard.registry.changed_on_disk)
                if changed:
                    await self.reload("file change")
            except Exception:  # a watcher that dies would silently stop reloads
                logger.exception("deployments watcher: reload failed; will retry on the next change")

    def on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload("SIGHUP"))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("deployments reload failed", exc_info=task.exception())


def _install_sighup(reloader: _Reloader) -> bool:
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.on_sighup)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True
