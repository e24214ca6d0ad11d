"""The typed inference API: chat requests with sampling options, streamed deltas, responses with usage counts.

An inference engine plugin returns a :class:`ChatModel`; ``ft-core chat`` (and an OpenAI-style server) use only
this interface.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length"]

#: The image placeholder in message text: the n-th ``<image>`` of a request's messages (in order) is the n-th
#: image of :attr:`ChatRequest.images`, as training rows carry images (``Conversation.images``). Since 0.3.0.
IMAGE_PLACEHOLDER = "<image>"

#: One image of a request: a file path, the encoded file's bytes (PNG, JPEG, ...) or a PIL image.
ImageInput = Any


def count_image_placeholders(messages: list[dict[str, Any]]) -> int:
    """How many ``<image>`` placeholders the text of ``messages`` holds (string contents and text parts).
    Since 0.3.0."""
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            count += content.count(IMAGE_PLACEHOLDER)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    count += part["text"].count(IMAGE_PLACEHOLDER)
    return count


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample: ``temperature`` 0 is greedy; ``stop`` strings end the reply (not included in it);
    ``seed`` makes sampling reproducible."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not stop for stop in self.stop):
            raise ValueError("a stop string must not be empty (it would end every reply at once)")


@dataclass(frozen=True)
class ChatRequest:
    """Messages (OpenAI / Hugging Face dicts: ``role``, ``content``, optional ``tool_calls``), tools offered to
    the model (JSON-schema functions) and sampling options.

    ``images`` (since 0.3.0): the request's images (paths, bytes or PIL images) in the order of the ``<image>``
    placeholders (:data:`IMAGE_PLACEHOLDER`) in the messages' text, one image per placeholder; only a model whose
    :attr:`ChatModel.accepts_images` is true takes them (others refuse such a request with an error).
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    images: list[ImageInput] = field(default_factory=list)


@dataclass(frozen=True)
class Usage:
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatDelta:
    """A streamed piece of the reply; the last delta of a stream has ``finish_reason`` and ``usage`` set."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class ChatResponse:
    """A whole reply."""

    text: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class VisionTarget:
    """How a vision-language target turns images into model inputs (since 0.3.0): the model folder whose
    processor (``AutoProcessor``) processes them, its ``model_type`` (to pick the processor class), and
    ``template_image_token``, the chat template's text for one image content part (``None``: the template takes
    text only, and each ``<image>`` becomes the processor's image token)."""

    processor_path: str
    model_type: str
    template_image_token: str | None = None


@dataclass
class ChatTarget:
    """What to load for chat: where the tokenizer is and how to build the model.

    ``load_model(dtype)`` returns the model; ``stop_words``, ``system``, ``template_kwargs`` (extra Jinja variables
    such as ``enable_thinking``) and ``template`` (the registered template's name, for its tool-call parser) come
    from the run's chat template. ``vision`` (since 0.3.0) is set for a vision-language model, which then takes
    images (:attr:`ChatRequest.images`).
    """

    description: str
    tokenizer_path: str
    load_model: Callable[[Any], Any]
    stop_words: list[str] = field(default_factory=list)
    system: str | None = None
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    vision: VisionTarget | None = None


class ChatModel(ABC):
    """A loaded model that answers chat requests."""

    #: Whether requests may carry images (:attr:`ChatRequest.images`): a vision-language model. Since 0.3.0.
    accepts_images: bool = False

    @abstractmethod
    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        """Stream the reply to ``request``; the last delta carries ``finish_reason`` and ``usage``."""

    def generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Answer several requests (engines batch them; this default answers one after another)."""
        return [self.complete(request) for request in requests]

    def stream_batch(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatDelta]]:
        """Stream the replies to several requests, as ``(index into requests, delta)`` pairs; each request's last
        delta carries its ``finish_reason`` and ``usage``. Engines generate the requests together (a server
        collects concurrent requests into one call); this default streams them one after another.

        Since 0.3.0.
        """
        for index, request in enumerate(requests):
            for delta in self.stream(request):
                yield index, delta

    def complete(self, request: ChatRequest) -> ChatResponse:
        """The whole reply to one request."""
        pieces: list[str] = []
        last = ChatDelta("")
        for delta in self.stream(request):
            pieces.append(delta.text)
            last = delta
        assert last.finish_reason is not None and last.usage is not None, "a stream must end with its usage"
        return ChatResponse("".join(pieces), last.finish_reason, last.usage)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """:meth:`stream` for asyncio servers: generation runs in a thread, deltas arrive on the event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ChatDelta | BaseException | None] = asyncio.Queue()

        def produce() -> None:
            try:
                for delta in self.stream(request):
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            except BaseException as exc:  # handed to the consumer below
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=produce, daemon=True).start()
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
