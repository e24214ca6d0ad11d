"""The OpenAI-compatible HTTP API: ``POST /v1/chat/completions`` (streamed over server-sent events or not),
``GET /v1/models``, ``GET /v1/models/{id}`` and ``GET /health``.

Every error is a JSON body in OpenAI's shape with a 4xx status (5xx only for a failure of the server itself, logged
with its traceback on the server, never sent to the client).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ft_core.api import ChatDelta, ChatModel, FtCoreError, Usage
from ft_core.api.toolcalls import ToolCallParser
from ft_core_serve.batching import Batcher, ServerBusy
from ft_core_serve.protocol import (
    ApiError,
    ChunkWriter,
    ImagePolicy,
    Limits,
    Reply,
    completion_body,
    parse_request,
    to_chat_request,
)

#: uvicorn's error log (configured by uvicorn): where failures of the server are written, with tracebacks.
log = logging.getLogger("uvicorn.error")

#: Errors of a request's own making that the engine raises (a conversation the chat template refuses, a bad
#: sampling value): a 400 with the message.
_CLIENT_ERRORS = (FtCoreError, ValueError, TypeError, jinja2.TemplateError)


@dataclass(frozen=True)
class ServedModel:
    """The loaded model and what the run's chat template adds to every request."""

    #: The id clients send as ``model`` and ``/v1/models`` lists.
    name: str
    model: ChatModel
    #: The run's system prompt, for conversations that have none.
    system: str | None = None
    #: The run template's stop words (one several tokens long is caught as text).
    stop_words: tuple[str, ...] = ()
    #: The chat template's tool-call parser; ``None``: the template has no tool format.
    parse_tool_calls: ToolCallParser | None = None
    #: The run's ``generation`` section: its settings apply where a request leaves them out.
    generation: dict[str, Any] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True)
class ServerOptions:
    """Limits, authentication and batching of the server."""

    #: Clients must send ``Authorization: Bearer <api_key>``; ``None``: no authentication.
    api_key: str | None = None
    #: Most completion tokens of one reply (and the budget of a request that sets none).
    max_tokens: int = 512
    #: Largest request body, in bytes (413 above).
    max_body_bytes: int = 1 << 20
    #: Most requests generated together; 1 serves them one at a time.
    max_batch_size: int = 32
    #: How long the first request of a batch waits for others, in seconds.
    batch_window_s: float = 0.01
    #: Most requests waiting for a batch (503 above).
    max_queue: int = 256
    #: The folder whose image files requests may name in ``image_url`` (a vision model); ``None``: data: URLs
    #: only. Remote URLs are never fetched.
    image_folder: Path | None = None

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key:
            raise ValueError("the API key must not be empty")
        for name in ("max_tokens", "max_body_bytes", "max_batch_size", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_window_s < 0:
            raise ValueError(f"batch_window_s must be >= 0, got {self.batch_window_s}")


def _error_response(error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _authorized(header: str | None, key: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries ``key`` (compared in constant time)."""
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


async def _read_json(request: Request, limit: int) -> Any:
    """The decoded JSON body; 413 past ``limit`` bytes (read no further), 400 when it is not JSON."""
    too_large = ApiError(
        413, f"the request body is larger than this server allows ({limit} bytes)", code="request_too_large"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload; make sure "
            "the body is valid JSON (UTF-8) and the Content-Type is application/json.",
            code="invalid_json",
        ) from None


def _generation_error(exc: BaseException) -> ApiError:
    """What the client is told about a failed generation (server failures are logged, not sent)."""
    if isinstance(exc, ServerBusy):
        return ApiError(
            503, f"the server is overloaded: {exc}", type="server_error", code="server_overloaded"
        )
    if isinstance(exc, _CLIENT_ERRORS):
        return ApiError(400, f"the request cannot be generated: {exc}")
    log.error("generation failed", exc_info=exc)
    return ApiError(500, "the server failed to generate a reply (see the server log)", type="server_error")


def create_app(served: ServedModel, options: ServerOptions) -> FastAPI:
    """The ASGI app serving ``served`` with ``options``; its batcher runs while the app's lifespan does."""
    batcher = Batcher(served.model, options.max_batch_size, options.batch_window_s, options.max_queue)
    limits = Limits(max_tokens=options.max_tokens)
    images = ImagePolicy(accepts_images=served.model.accepts_images, folder=options.image_folder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="ft-core serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = (
            f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else exc.detail
        )
        return _error_response(
            ApiError(exc.status_code, str(message), code="not_found" if exc.status_code == 404 else None)
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the exception with its traceback after this answer; the client gets no traceback.
        return _error_response(
            ApiError(500, "internal server error (see the server log)", type="server_error")
        )

    async def authenticate(request: Request) -> None:
        if options.api_key is not None and not _authorized(
            request.headers.get("authorization"), options.api_key
        ):
            raise ApiError(
                401,
                "Incorrect or missing API key: send the key given to ft-core serve (--api-key or FT_CORE_API_KEY) "
                "as 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    authenticated = [Depends(authenticate)]

    def model_card() -> dict[str, Any]:
        return {"id": served.name, "object": "model", "created": served.created, "owned_by": "ft-core"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=authenticated)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", dependencies=authenticated)
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != served.name:
            raise _unknown_model(model_id, served.name)
        return model_card()

    @app.post("/v1/chat/completions", response_model=None, dependencies=authenticated)
    async def chat_completions(request: Request) -> Response:
        body = parse_request(await _read_json(request, options.max_body_bytes))
        if body.model != served.name:
            raise _unknown_model(body.model, served.name)
        chat = to_chat_request(
            body,
            limits=limits,
            system=served.system,
            stop_words=served.stop_words,
            images=images,
            generation=served.generation,
        )
        parser = served.parse_tool_calls if chat.tools else None
        deltas = batcher.stream(chat)
        try:
            first = await anext(deltas)  # the request is rendered and generating: errors so far get a status
        except Exception as exc:
            raise _generation_error(exc) from None
        if body.stream:
            writer = ChunkWriter(
                served.name, body.stream_options is not None and body.stream_options.include_usage
            )
            return StreamingResponse(
                _events(writer, first, deltas, parser),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        pieces = [first.text]
        last = first
        try:
            async for delta in deltas:
                pieces.append(delta.text)
                last = delta
        except Exception as exc:
            raise _generation_error(exc) from None
        assert last.finish_reason is not None and last.usage is not None
        reply = Reply.build("".join(pieces), last.finish_reason, parser)
        return JSONResponse(completion_body(served.name, reply, last.usage))

    return app


def _unknown_model(asked: str, served: str) -> ApiError:
    return ApiError(
        404,
        f"The model '{asked}' does not exist: this server serves '{served}' (GET /v1/models lists it)",
        param="model",
        code="model_not_found",
    )


async def _events(
    writer: ChunkWriter,
    first: ChatDelta,
    deltas: AsyncGenerator[ChatDelta, None],
    parser: ToolCallParser | None,
) -> AsyncIterator[str]:
    """The server-sent events of one streamed reply. With tools offered (and a tool-call parser), the text is
    held back until the end, when it is known whether it is a tool call."""
    yield writer.delta({"role": "assistant", "content": ""})
    held: list[str] = []
    delta = first
    try:
        while True:
            if parser is not None:
                held.append(delta.text)
            elif delta.text:
                yield writer.delta({"content": delta.text})
            if delta.finish_reason is not None:
                break
            delta = await anext(deltas)
    except Exception as exc:
        yield writer.error(_generation_error(exc))
        return
    finally:
        await deltas.aclose()  # the client went away: a request still waiting for its batch is dropped
    assert delta.finish_reason is not None and delta.usage is not None
    usage: Usage = delta.usage
    reply = Reply.build("".join(held), delta.finish_reason, parser)
    if parser is not None and (reply.content or reply.tool_calls):
        yield writer.reply(reply)
    yield writer.end(reply.finish_reason, usage)
