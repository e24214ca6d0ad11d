"""The OpenAI chat-completions wire format: request validation, conversion to :class:`~ft_core.api.ChatRequest`,
response and stream-chunk bodies, and errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.

Requests are validated strictly, as OpenAI does: wrong types are not coerced (``"temperature": "0.5"`` is an
error), unknown top-level arguments are errors, and every problem names the offending field in ``param``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ft_core.api import ChatRequest, SamplingOptions, Usage
from ft_core.api.inference import IMAGE_PLACEHOLDER, FinishReason
from ft_core.api.toolcalls import ToolCallParser

#: OpenAI accepts at most this many stop sequences per request.
MAX_STOP_SEQUENCES = 4


class ApiError(Exception):
    """An error answered in OpenAI's shape with HTTP ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# --------------------------------------------------------------------------------------------- request models
class _Lenient(BaseModel):
    """Nested objects: strict types, unknown keys ignored (clients add their own bookkeeping fields)."""

    model_config = ConfigDict(strict=True, extra="ignore")


class FunctionCall(_Lenient):
    """A function call of an earlier assistant turn: ``arguments`` is a JSON string, as OpenAI sends it."""

    name: str
    arguments: str


class ToolCall(_Lenient):
    """A tool call of an earlier assistant turn."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class TextPart(_Lenient):
    """A text content part."""

    type: Literal["text"]
    text: str


class ImagePart(_Lenient):
    """An image content part: ``image_url`` is ``{"url": ...}`` (or the URL itself) with a ``data:`` URL (base64)
    or, where the server allows a folder (``ft-core serve --image-folder``), a local file in it. Only a vision
    model takes images."""

    type: Literal["image_url"]
    image_url: Any = None


class Message(_Lenient):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Annotated[TextPart | ImagePart, Field(discriminator="type")]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(_Lenient):
    """A function the model may call (JSON schema ``parameters``)."""

    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Lenient):
    """A tool offered to the model."""

    type: Literal["function"]
    function: FunctionDefinition


class StreamOptions(_Lenient):
    """``stream_options``: ``include_usage`` adds a last chunk with the token counts."""

    include_usage: bool = False


class ResponseFormat(_Lenient):
    """``response_format``: only plain text is supported."""

    type: Literal["text"]


class CompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``. Arguments that the server cannot honour accept only their
    neutral value (``n: 1``, penalties 0, no log-probabilities)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto"] | None = None
    parallel_tool_calls: bool | None = None
    n: Literal[1] | None = 1
    presence_penalty: Literal[0] | None = 0
    frequency_penalty: Literal[0] | None = 0
    logprobs: Literal[False] | None = False
    response_format: ResponseFormat | None = None
    user: str | None = None


#: What pydantic writes into an error location for the member of a union that failed (not a field name).
_UNION_MEMBERS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _param(location: Sequence[int | str]) -> str:
    """A pydantic error location as OpenAI writes ``param``: ``messages[0].content``."""
    text = ""
    previous: int | str | None = None
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _UNION_MEMBERS or "[" in part:
            continue  # the union member that failed: `str`, `list[...]`
        elif part in ("text", "image_url") and isinstance(previous, int):
            pass  # the discriminated-union tag pydantic puts after a content part's index
        else:
            text += f".{part}" if text else part
        previous = part
    return text


def _unsupported_value(param: str) -> str:
    return {
        "n": "n: only 1 choice per request is supported",
        "presence_penalty": "presence_penalty: not supported (only 0)",
        "frequency_penalty": "frequency_penalty: not supported (only 0)",
        "logprobs": "logprobs: not supported",
        "tool_choice": "tool_choice: only 'auto' (the model decides) and 'none' are supported",
        "response_format.type": "response_format: only {'type': 'text'} is supported (no JSON mode)",
    }.get(param, "")


def parse_request(data: Any) -> CompletionRequest:
    """Validate a decoded JSON body; the first problem becomes a 400 naming its field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return CompletionRequest.model_validate(data)
    except ValidationError as exc:
        error = max(
            exc.errors(), key=lambda e: len(e["loc"])
        )  # of a union's members, the one that got furthest
        param = _param(error["loc"])
        if error["type"] == "extra_forbidden":
            raise ApiError(400, f"Unrecognized request argument supplied: {param}", param=param) from None
        message = _unsupported_value(param) if error["type"] == "literal_error" else ""
        if not message:
            given = json.dumps(error.get("input"), default=str)
            given = given if len(given) <= 80 else given[:77] + "..."
            message = f"{param}: {error['msg']} (got {given})" if param else error["msg"]
        raise ApiError(400, message, param=param or None) from None


# --------------------------------------------------------------------------------------------- conversion
@dataclass(frozen=True)
class ImagePolicy:
    """Which images a request may carry: none for a text-only model; ``data:`` URLs for a vision model, and local
    files inside ``folder`` when one is set (remote URLs are never fetched)."""

    accepts_images: bool = False
    folder: Path | None = None


def _image_url(part: ImagePart) -> Any:
    value = part.image_url
    return value.get("url") if isinstance(value, dict) else value


def _data_url(url: str, param: str) -> bytes:
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ApiError(
            400, f"{param}: a data URL must be base64-encoded (data:image/png;base64,...)", param=param
        )
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param}: the data URL is not valid base64", param=param) from None
    if not decoded:
        raise ApiError(400, f"{param}: the data URL holds no image", param=param)
    return decoded


def image_path(url: str, folder: Path | None, param: str) -> Path:
    """The local file of an image URL (``file://`` URL or path; relative to ``folder``), only inside ``folder``:
    ``..`` and paths outside it (symbolic links followed) are refused."""
    if folder is None:
        raise ApiError(
            400,
            f"{param}: only data: URLs are accepted (base64 images); this server reads no local files (start it "
            "with --image-folder to allow files from one folder) and never fetches remote URLs",
            param=param,
        )
    raw = url[len("file://") :] if url.startswith("file://") else url
    path = Path(raw)
    if ".." in path.parts:
        raise ApiError(400, f"{param}: '..' is not allowed in an image path", param=param)
    root = folder.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise ApiError(400, f"{param}: the image path is outside the server's image folder", param=param)
    if not resolved.is_file():
        raise ApiError(400, f"{param}: no such image file in the server's image folder: {raw}", param=param)
    return resolved


def _image(part: ImagePart, policy: ImagePolicy, param: str) -> bytes | str:
    if not policy.accepts_images:
        raise ApiError(
            400, f"{param}: image input is not supported: the served model reads text only", param=param
        )
    url = _image_url(part)
    if not isinstance(url, str) or not url:
        raise ApiError(400, f"{param}.image_url.url: required (a data: URL)", param=f"{param}.image_url.url")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _data_url(url, param)
    if scheme not in ("", "file") and len(scheme) > 1:  # (a one-letter scheme is a Windows drive)
        raise ApiError(
            400,
            f"{param}: {scheme}: image URLs are not fetched (the server has no network access for images); send "
            "the image as a data: URL (base64)",
            param=param,
        )
    return str(image_path(url, policy.folder, param))


@dataclass
class _Images:
    """The images of a request, in the order of their parts (each part becomes an ``<image>`` placeholder)."""

    policy: ImagePolicy
    found: list[bytes | str] = field(default_factory=list)


def _text(message: Message, index: int, images: _Images | None = None) -> str:
    content = message.content
    if content is None:
        if message.role == "assistant" and message.tool_calls:
            return ""
        raise ApiError(400, f"messages[{index}].content: required", param=f"messages[{index}].content")
    images = images or _Images(ImagePolicy())
    if isinstance(content, str):
        _check_placeholder(content, images, f"messages[{index}].content")
        return content
    pieces = []
    for part_index, part in enumerate(content):
        param = f"messages[{index}].content[{part_index}]"
        if isinstance(part, ImagePart):
            images.found.append(_image(part, images.policy, param))
            pieces.append(IMAGE_PLACEHOLDER)
            continue
        _check_placeholder(part.text, images, f"{param}.text")
        pieces.append(part.text)
    return "".join(pieces)


def _check_placeholder(text: str, images: _Images, param: str) -> None:
    """A vision model reads ``<image>`` in text as an image's place: refuse it as text."""
    if images.policy.accepts_images and IMAGE_PLACEHOLDER in text:
        raise ApiError(
            400,
            f"{param}: the text must not contain {IMAGE_PLACEHOLDER!r} (it marks an image's place); send images "
            "as image_url content parts",
            param=param,
        )


def _tool_calls(message: Message, index: int) -> list[dict[str, Any]]:
    calls = []
    for call_index, call in enumerate(message.tool_calls or []):
        param = f"messages[{index}].tool_calls[{call_index}].function.arguments"
        try:
            arguments = json.loads(call.function.arguments)
        except ValueError:
            raise ApiError(400, f"{param}: not valid JSON", param=param) from None
        entry: dict[str, Any] = {
            "type": "function",
            "function": {"name": call.function.name, "arguments": arguments},
        }
        if call.id is not None:
            entry["id"] = call.id
        calls.append(entry)
    return calls


def to_messages(
    request: CompletionRequest, system: str | None, images: _Images | None = None
) -> list[dict[str, Any]]:
    """The conversation as chat-template messages (Hugging Face dicts): ``developer`` is ``system``, tool-call
    arguments are decoded, and ``system`` (the run's system prompt) opens a conversation that has none. Image parts
    become ``<image>`` placeholders, their images collected in ``images``."""
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        converted: dict[str, Any] = {"role": role, "content": _text(message, index, images)}
        if message.role == "assistant" and message.tool_calls:
            converted["tool_calls"] = _tool_calls(message, index)
        if message.role == "tool":
            if message.tool_call_id is not None:
                converted["tool_call_id"] = message.tool_call_id
            if message.name is not None:
                converted["name"] = message.name
        messages.append(converted)
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    #: Most completion tokens of one reply; also the budget of a request that sets none.
    max_tokens: int


def to_chat_request(
    request: CompletionRequest,
    *,
    limits: Limits,
    system: str | None,
    stop_words: Sequence[str],
    images: ImagePolicy | None = None,
    generation: Mapping[str, Any] | None = None,
) -> ChatRequest:
    """The typed inference request: the run's system prompt and stop words applied, limits enforced, images
    (``image_url`` parts, as ``images`` allows) as the request's images. Sampling: OpenAI's defaults
    (temperature 1.0), then the run's ``generation`` section, then the request's own values."""
    for name in ("max_completion_tokens", "max_tokens"):
        asked = getattr(request, name)
        if asked is not None and asked > limits.max_tokens:
            raise ApiError(
                400,
                f"{name} is {asked}, more than this server allows ({limits.max_tokens}, set by ft-core serve "
                "--max-tokens)",
                param=name,
            )
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise ApiError(400, f"stop: at most {MAX_STOP_SEQUENCES} sequences, got {len(stops)}", param="stop")
    if any(not stop for stop in stops):
        raise ApiError(400, "stop: a stop sequence must not be empty", param="stop")
    run = dict(generation or {})
    if run.get("max_new_tokens") is not None:
        run["max_new_tokens"] = min(int(run["max_new_tokens"]), limits.max_tokens)
    asked = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_new_tokens": request.max_completion_tokens or request.max_tokens,
        "seed": request.seed,
        "stop": stops,
    }
    try:
        sampling = SamplingOptions.from_settings(
            {"temperature": 1.0, "max_new_tokens": limits.max_tokens}, run, asked, {"stop": list(stop_words)}
        )
    except ValueError as exc:  # the run's generation section holds a value out of range
        raise ApiError(500, f"the served run's generation section: {exc}") from None
    offered = request.tools if request.tool_choice != "none" else None
    tools = [tool.model_dump(exclude_none=True) for tool in offered] if offered else None
    found = _Images(images or ImagePolicy())
    messages = to_messages(request, system, found)
    return ChatRequest(messages=messages, tools=tools, sampling=sampling, images=list(found.found))


# --------------------------------------------------------------------------------------------- responses
def completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def _openai_tool_calls(calls: list[dict[str, Any]], streamed: bool) -> list[dict[str, Any]]:
    """Parsed calls (Hugging Face form, ``arguments`` a dict) in OpenAI's form (``arguments`` a JSON string)."""
    result = []
    for index, call in enumerate(calls):
        function = call["function"]
        arguments = function["arguments"]
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        entry: dict[str, Any] = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": function["name"],
                "arguments": arguments,
            },
        }
        result.append({"index": index, **entry} if streamed else entry)
    return result


@dataclass(frozen=True)
class Reply:
    """A finished reply: the content and tool calls (parsed when tools were offered) and why it ended."""

    content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str

    @classmethod
    def build(cls, text: str, finish: FinishReason, parser: ToolCallParser | None) -> Reply:
        """Split ``text`` into content and tool calls with ``parser`` (``None``: tools were not offered)."""
        if parser is None:
            return cls(text, [], finish)
        content, calls = parser(text)
        if not calls:
            return cls(text, [], finish)
        return cls(content or None, calls, "tool_calls" if finish == "stop" else finish)


def usage_body(usage: Usage) -> dict[str, int]:
    """Token counts in OpenAI's shape."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_body(model: str, reply: Reply, usage: Usage) -> dict[str, Any]:
    """The body of a non-streamed ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = _openai_tool_calls(reply.tool_calls, streamed=False)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": usage_body(usage),
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Server-sent events of one streamed completion (``chat.completion.chunk`` objects, then ``[DONE]``)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        """One chunk carrying ``delta`` (``{"role": ...}``, ``{"content": ...}``, ``{"tool_calls": [...]}``)."""
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def reply(self, reply: Reply) -> str:
        """The chunk of a reply held back until its end (tools were offered): its content or its tool calls."""
        if reply.tool_calls:
            return self.delta({"tool_calls": _openai_tool_calls(reply.tool_calls, streamed=True)})
        return self.delta({"content": reply.content or ""})

    def end(self, finish_reason: str, usage: Usage) -> str:
        """The closing chunk (empty delta, ``finish_reason``), the usage chunk if asked for, and ``[DONE]``."""
        events = self.delta({}, finish_reason)
        if self.include_usage:
            events += self._event([], usage=usage_body(usage))
        return events + "data: [DONE]\n\n"

    @staticmethod
    def error(error: ApiError) -> str:
        """An error event: the stream ends with it (OpenAI's clients raise it)."""
        return f"data: {json.dumps(error.body())}\n\n"
