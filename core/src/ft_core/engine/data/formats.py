"""The built-in dataset formats: ``alpaca``, ``sharegpt`` and ``text`` (LLaMA-Factory semantics).

A format turns one raw row into a :class:`~ft_core.api.conversation.Conversation` (or a ``str`` for plain
text). A malformed row raises :class:`RowError` (a ``ValueError`` naming the offending column); the loader adds
the file and row number.

Preference data: with ``ranking: true`` the conversation ends with the *chosen* answer and
``extra["rejected"]`` holds the rejected assistant :class:`~ft_core.api.conversation.Message`. With a
``kto_tag`` column, ``extra["kto_tag"]`` is the row's boolean label.

Import-light on purpose (standard library only): ``ft_core.builtin`` imports it at plugin-load time.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, ClassVar

from ft_core.api.components import DatasetFormat
from ft_core.api.conversation import Conversation, Message
from ft_core.api.datasets import DatasetSpec, Tags

#: ``Conversation.extra`` key of a row without an answer (alpaca without its response, sharegpt ending with a
#: user turn): the error other stages than those of ``prompt`` data raise for it.
NO_ANSWER = "no_answer"


class RowError(ValueError):
    """A malformed row: ``column`` is the offending column (``None`` when not one column's fault)."""

    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _optional_text(row: dict[str, Any], column: str | None) -> str:
    """The string in ``column``, or ``""`` when the column is not configured, absent or null."""
    if column is None or row.get(column) is None:
        return ""
    value = row[column]
    if not isinstance(value, str):
        raise RowError(column, f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _required_text(row: dict[str, Any], column: str | None, what: str) -> str:
    if column is None:
        raise RowError(None, f"no column is configured for the {what} (set columns in dataset_info.json)")
    if column not in row:
        raise RowError(column, f"missing column {column!r} (the {what})")
    value = _optional_text(row, column)
    if not value.strip():
        raise RowError(column, f"empty {what}")
    return value


def _json_value(column: str, value: Any) -> Any:
    """``value`` itself, or the JSON it holds when it is a string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError(column, f"invalid JSON at column {exc.colno}: {exc.msg}") from None


def _tools(row: dict[str, Any], spec: DatasetSpec) -> list[dict[str, Any]] | None:
    """The ``tools`` column as Hugging Face tool definitions (``{"type": "function", "function": {...}}``)."""
    column = spec.columns.tools
    if column is None or row.get(column) in (None, "", []):
        return None
    tools = _json_value(column, row[column])
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise RowError(column, f"expected a list of function schemas, got {type(tools).__name__}")
    result = []
    for tool in tools:
        if (
            isinstance(tool, dict)
            and tool.get("type") == "function"
            and isinstance(tool.get("function"), dict)
        ):
            result.append(tool)
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
            result.append({"type": "function", "function": tool})
        else:
            raise RowError(column, f"expected a function schema with a 'name', got {tool!r}")
    return result


def _tool_calls(column: str, position: int, content: Any) -> list[dict[str, Any]]:
    """A function-call turn's content (``{"name", "arguments"}`` or a list of them) as HF ``tool_calls``."""
    calls = _json_value(column, content)
    calls = calls if isinstance(calls, list) else [calls]
    result = []
    for call in calls:
        if not (isinstance(call, dict) and isinstance(call.get("name"), str) and "arguments" in call):
            raise RowError(
                column,
                f"message {position}: a function call must be {{'name': ..., 'arguments': {{...}}}}, got {call!r}",
            )
        arguments = call["arguments"]
        if isinstance(arguments, str):
            with contextlib.suppress(json.JSONDecodeError):  # arguments that are not JSON stay as written
                arguments = json.loads(arguments) if arguments.strip() else {}
        result.append({"type": "function", "function": {"name": call["name"], "arguments": arguments}})
    return result


#: The placeholder of one image in message text (LLaMA-Factory's).
IMAGE_PLACEHOLDER = "<image>"


def _images(row: dict[str, Any], spec: DatasetSpec, conversation: Conversation) -> Conversation:
    """Attach the ``images`` column's files (paths relative to ``data.media_dir``, else the dataset folder) and check that the messages
    hold exactly one ``<image>`` placeholder per image. Whether the files open is checked by the loader."""
    column = spec.columns.images
    if column is None:  # a text dataset: "<image>" in its text is just text
        return conversation
    value = row.get(column)
    if value in (None, "", []):
        paths: list[str] = []
    else:
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.strip() for p in paths):
            raise RowError(column, f"expected a list of image file paths, got {value!r}")
    placeholders = sum(m.content.count(IMAGE_PLACEHOLDER) for m in conversation.messages)
    if placeholders != len(paths):
        raise RowError(
            column,
            f"{placeholders} {IMAGE_PLACEHOLDER} placeholder(s) in the messages but {len(paths)} image(s) in "
            f"column {column!r}; put one {IMAGE_PLACEHOLDER} in the text for each image, in order",
        )
    conversation.images = [str(spec.media_root / p) for p in paths]
    return conversation


def _preference(row: dict[str, Any], spec: DatasetSpec, conversation: Conversation) -> Conversation:
    """Attach the KTO label when the spec names a ``kto_tag`` column."""
    column = spec.columns.kto_tag
    if column is not None:
        if not isinstance(row.get(column), bool):
            raise RowError(column, f"expected true or false, got {row.get(column)!r}")
        conversation.extra["kto_tag"] = row[column]
    return conversation


class AlpacaFormat(DatasetFormat):
    """``instruction`` / ``input`` / ``output`` rows (LLaMA-Factory's alpaca format).

    The user turn is the prompt column, plus ``"\\n"`` and the query column when that is non-empty; the
    ``system`` column is the system prompt; ``history`` is a list of ``[query, response]`` pairs placed before
    it; the response column is the final assistant turn. With ``ranking``, the ``chosen`` / ``rejected``
    columns hold the two answers.
    """

    description = "alpaca: instruction / input / output (+ system, history, chosen / rejected)"

    def convert(self, row: dict[str, Any], spec: DatasetSpec) -> Conversation:
        columns = spec.columns
        messages = []
        system = _optional_text(row, columns.system)
        if system:
            messages.append(Message("system", system))
        history = row.get(columns.history) if columns.history else None
        if history:
            if not isinstance(history, list):
                raise RowError(
                    columns.history, f"expected a list of [query, response] pairs, got {history!r}"
                )
            for pair in history:
                if not (
                    isinstance(pair, list | tuple)
                    and len(pair) == 2
                    and all(isinstance(t, str) for t in pair)
                ):
                    raise RowError(
                        columns.history, f"expected a [query, response] pair of strings, got {pair!r}"
                    )
                messages += [Message("user", pair[0]), Message("assistant", pair[1])]
        user = "\n".join(
            t for t in (_optional_text(row, columns.prompt), _optional_text(row, columns.query)) if t
        )
        if not user.strip():
            if columns.prompt is not None and columns.prompt not in row:
                raise RowError(columns.prompt, f"missing column {columns.prompt!r} (the instruction)")
            raise RowError(columns.prompt, "empty instruction and input")
        messages.append(Message("user", user))
        conversation = Conversation(messages, tools=_tools(row, spec))
        if spec.ranking:
            messages.append(Message("assistant", _required_text(row, columns.chosen, "chosen answer")))
            conversation.extra["rejected"] = Message(
                "assistant", _required_text(row, columns.rejected, "rejected answer")
            )
        else:
            try:
                messages.append(Message("assistant", _required_text(row, columns.response, "response")))
            except RowError as exc:  # a prompt-only row: stages of prompt data read it, the others refuse it
                conversation.extra[NO_ANSWER] = exc
        return _preference(row, spec, conversation)


class ShareGptFormat(DatasetFormat):
    """Multi-turn ``conversations`` lists (LLaMA-Factory's sharegpt format, or OpenAI style via ``tags``).

    Roles map as user_tag -> user, assistant_tag -> assistant, observation_tag -> tool, function_tag ->
    assistant with ``tool_calls``, system_tag -> system (only as the first message; otherwise the ``system``
    column is the system prompt). Turns must alternate: a user or observation turn, then an assistant or
    function-call turn; an observation must follow a function call. With ``ranking``, the ``chosen`` and
    ``rejected`` columns each hold one assistant message.
    """

    description = "sharegpt: multi-turn conversations with from/value (or role/content) messages"

    def convert(self, row: dict[str, Any], spec: DatasetSpec) -> Conversation:
        tags, column = spec.tags, spec.columns.messages
        if column is None or column not in row:
            raise RowError(column, f"missing column {column!r} (the messages)")
        raw = row[column]
        if not isinstance(raw, list) or not raw:
            raise RowError(column, f"expected a non-empty list of messages, got {raw!r}")
        turns = [self._turn(column, tags, position, message) for position, message in enumerate(raw, start=1)]
        messages = []
        if turns[0][0] == tags.system_tag:
            messages.append(self._message(column, tags, 1, *turns.pop(0)))
            offset = 2
        else:
            system = _optional_text(row, spec.columns.system)
            if system:
                messages.append(Message("system", system))
            offset = 1
        if not turns:
            raise RowError(column, "the conversation has no turns besides the system message")
        odd, even = (tags.user_tag, tags.observation_tag), (tags.assistant_tag, tags.function_tag)
        previous = None
        for index, (tag, content) in enumerate(turns):
            position = index + offset
            expected = even if index % 2 else odd
            after = f"after {previous!r}" if previous else "at the start"
            if tag not in expected:
                raise RowError(
                    column,
                    f"message {position}: expected {' or '.join(map(repr, expected))} {after}, got {tag!r}",
                )
            if tag == tags.observation_tag and previous != tags.function_tag:
                raise RowError(
                    column,
                    f"message {position}: an {tag!r} turn must follow a {tags.function_tag!r} turn, not come {after}",
                )
            messages.append(self._message(column, tags, position, tag, content))
            previous = tag
        if spec.ranking:
            if len(turns) % 2 == 0:
                raise RowError(
                    column,
                    "a ranking conversation must end with a user turn (answers are in chosen/rejected)",
                )
            messages.append(self._answer(row, spec, spec.columns.chosen))
            rejected = self._answer(row, spec, spec.columns.rejected)
            conversation = Conversation(messages, tools=_tools(row, spec), extra={"rejected": rejected})
        else:
            conversation = Conversation(messages, tools=_tools(row, spec))
            if len(turns) % 2:  # a prompt-only row: stages of prompt data read it, the others refuse it
                conversation.extra[NO_ANSWER] = RowError(
                    column, f"the conversation ends with a {previous!r} turn; it must end with an answer"
                )
        return _preference(row, spec, _images(row, spec, conversation))

    @staticmethod
    def _turn(column: str, tags: Tags, position: int, message: Any) -> tuple[str, Any]:
        if not isinstance(message, dict):
            raise RowError(column, f"message {position}: expected an object, got {message!r}")
        for key in (tags.role_tag, tags.content_tag):
            if key not in message:
                raise RowError(
                    column,
                    f"message {position}: missing key {key!r} (tags.role_tag / tags.content_tag: "
                    f"{tags.role_tag!r} / {tags.content_tag!r})",
                )
        tag = message[tags.role_tag]
        known = (tags.user_tag, tags.assistant_tag, tags.observation_tag, tags.function_tag, tags.system_tag)
        if tag not in known:
            raise RowError(
                column,
                f"message {position}: unknown role {tag!r}; expected one of {', '.join(map(repr, known))} "
                "(configure them with tags in dataset_info.json)",
            )
        return tag, message[tags.content_tag]

    @staticmethod
    def _message(column: str, tags: Tags, position: int, tag: str, content: Any) -> Message:
        if tag == tags.function_tag:
            return Message("assistant", "", tool_calls=_tool_calls(column, position, content))
        if not isinstance(content, str):
            raise RowError(column, f"message {position}: expected string content, got {content!r}")
        role = {
            tags.system_tag: "system",
            tags.user_tag: "user",
            tags.assistant_tag: "assistant",
            tags.observation_tag: "tool",
        }[tag]
        if role == "assistant" and not content.strip():
            raise RowError(column, f"message {position}: empty {tag!r} answer")
        return Message(role, content)

    def _answer(self, row: dict[str, Any], spec: DatasetSpec, column: str | None) -> Message:
        if column is None or column not in row:
            raise RowError(column, f"missing column {column!r} (a ranking answer)")
        tag, content = self._turn(column, spec.tags, 1, row[column])
        if tag not in (spec.tags.assistant_tag, spec.tags.function_tag):
            raise RowError(column, f"expected an answer tagged {spec.tags.assistant_tag!r}, got {tag!r}")
        return self._message(column, spec.tags, 1, tag, content)


class TextFormat(DatasetFormat):
    """Plain documents for pretraining: the ``text`` column (for an alpaca-formatted dataset, its prompt
    column, as LLaMA-Factory's ``c4_demo`` uses ``columns: {"prompt": "text"}``)."""

    description = "text: plain documents for pretraining"
    produces: ClassVar[str] = "text"

    def convert(self, row: dict[str, Any], spec: DatasetSpec) -> str:
        column = spec.columns.prompt if spec.formatting == "alpaca" else spec.columns.text
        return _required_text(row, column, "text")
