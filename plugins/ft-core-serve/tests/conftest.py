"""Fixtures of the ft-core-serve tests: scripted chat models and an in-process client of the app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ft_core.api import ChatDelta, ChatModel, ChatRequest, Usage


class Scripted(ChatModel):
    """Replies ``reply(request)`` in pieces of ``piece`` characters and records every request and batch."""

    def __init__(
        self, reply: Callable[[ChatRequest], str] = lambda r: "Hello there!", piece: int = 4
    ) -> None:
        self.reply, self.piece = reply, piece
        self.requests: list[ChatRequest] = []
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        with self.lock:
            self.requests.append(request)
        text = self.reply(request)
        pieces = [text[i : i + self.piece] for i in range(0, len(text), self.piece)] or [""]
        for piece in pieces[:-1]:
            yield ChatDelta(piece)
        yield ChatDelta(pieces[-1], finish_reason="stop", usage=Usage(len(request.messages), len(pieces)))

    def stream_batch(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatDelta]]:
        self.batches.append(len(requests))
        yield from super().stream_batch(requests)


@pytest.fixture(scope="session")
def serve_plugins() -> Any:
    """A plugin manager with core's built-ins and this plugin (as ``make_plugins`` builds it), for the whole session."""
    import ft_core_serve
    from ft_core.bootstrap import load_plugins

    return load_plugins(strict=True, entry_points=False, extra=[(ft_core_serve, "ft-core-serve")])


@pytest.fixture
def scripted() -> type[Scripted]:
    """The :class:`Scripted` chat model class."""
    return Scripted


@pytest.fixture
def serve_client() -> Callable[..., Any]:
    """``serve_client(model, served_fields={}, **ServerOptions)``: a TestClient of the app (use it in ``with``)."""
    from fastapi.testclient import TestClient

    from ft_core_serve.app import ServedModel, ServerOptions, create_app

    def make(model: ChatModel, served_fields: dict[str, Any] | None = None, **options: Any) -> Any:
        app = create_app(
            ServedModel(name="tiny", model=model, **(served_fields or {})), ServerOptions(**options)
        )
        return TestClient(app, raise_server_exceptions=False)

    return make
