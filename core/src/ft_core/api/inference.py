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


def check_sampling(options: Any) -> None:
    """Raise ``ValueError`` naming the first out-of-range setting of ``options`` (a :class:`SamplingOptions` or the
    ``generation`` config section)."""
    if options.temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {options.temperature}")
    if not 0 < options.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {options.top_p}")
    if options.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {options.max_new_tokens}")
    if options.top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = no limit), got {options.top_k}")
    if options.num_beams < 1:
        raise ValueError(f"num_beams must be >= 1 (1 = no beam search), got {options.num_beams}")
    if options.repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0 (1.0 = none), got {options.repetition_penalty}")
    if any(not stop for stop in options.stop):
        raise ValueError("a stop string must not be empty (it would end every reply at once)")


@dataclass(frozen=True)
class SamplingOptions:
    """How to generate: ``temperature`` 0 is greedy (unless ``do_sample``); ``stop`` strings end the reply (not
    included in it); ``seed`` makes sampling reproducible. ``top_k``, ``do_sample``, ``num_beams``,
    ``repetition_penalty`` and ``length_penalty`` (since 0.4.0) mean what they mean to ``transformers``'
    ``GenerationConfig``; engines that lack one refuse a request that sets it."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_k: int = 0
    do_sample: bool | None = None
    num_beams: int = 1
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        check_sampling(self)

    @property
    def samples(self) -> bool:
        """Whether tokens are sampled (else greedy or beam search)."""
        return self.do_sample if self.do_sample is not None else self.temperature > 0

    @classmethod
    def from_settings(cls, *layers: dict[str, Any] | None) -> SamplingOptions:
        """Options from a run's ``generation`` section, then flags or a request's values: each later layer's
        non-``None`` values override; ``stop`` strings of every layer add up. Raises ``ValueError`` for a value
        out of range."""
        known = {f for f in cls.__dataclass_fields__}
        merged: dict[str, Any] = {}
        stops: list[str] = []
        for layer in layers:
            for key, value in (layer or {}).items():
                if key == "stop":
                    stops += list(value or ())
                elif key in known and value is not None:
                    merged[key] = value
        return cls(**merged, stop=tuple(dict.fromkeys(stops)))


#: The generation flags of ``chat`` and ``predict``: (flag, SamplingOptions field, type, help).
GENERATION_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--max-new-tokens", "max_new_tokens", int, "most tokens per {what} (default 256)"),
    ("--temperature", "temperature", float, "0 = greedy decoding (the default)"),
    ("--top-p", "top_p", float, "nucleus sampling mass (default 1.0)"),
    ("--top-k", "top_k", int, "sample among the k most likely tokens (default 0: no limit)"),
    ("--repetition-penalty", "repetition_penalty", float, "> 1 penalises repeated tokens (default 1.0)"),
    ("--num-beams", "num_beams", int, "beam search with this many beams (default 1: off)"),
    ("--seed", "seed", int, "seed for reproducible sampling"),
)


def add_generation_flags(parser: Any, what: str) -> None:
    """The generation flags of a command (``chat``, ``predict``); each overrides the run's ``generation``
    section, which overrides the defaults."""
    import argparse

    for flag, _, kind, text in GENERATION_FLAGS:
        parser.add_argument(
            flag, type=kind, help=text.format(what=what) + "; overrides the run's generation section"
        )
    parser.add_argument(
        "--do-sample",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample (--do-sample) or decode greedily (--no-do-sample); default: sample when temperature > 0",
    )
    parser.add_argument(
        "--stop", action="append", default=[], metavar="TEXT", help=f"end the {what} at TEXT (repeatable)"
    )


def generation_flags(args: Any) -> dict[str, Any]:
    """The generation flags given on the command line (``None`` for those left out)."""
    flags = {name: getattr(args, name) for _, name, _, _ in GENERATION_FLAGS}
    return {**flags, "do_sample": args.do_sample, "stop": list(args.stop)}


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
    #: The run's ``generation`` section (as written in its ``config.yaml``); empty for a bare model. Since 0.4.0.
    generation: dict[str, Any] = field(default_factory=dict)


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
