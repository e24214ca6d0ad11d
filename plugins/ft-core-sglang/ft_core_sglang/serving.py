"""What a GPU engine serves for a chat target, and the backend-independent parts of a reply.

- :func:`locate`: the base model and the LoRA adapter of a run folder's target (its artefact folder holds the
  PEFT adapter and the tokenizer with the run's chat template; the run's ``manifest.json`` names the base model),
  or the model itself for a plain model or a full fine-tune.
- :class:`PromptRenderer`: the prompt as token ids, rendered exactly as the ``hf`` engine renders it (the
  tokenizer's chat template, i.e. the run's, with the generation prompt, ``tools`` and the run's template kwargs).
- :class:`StopFilter`: stop strings cut on the decoded text (a stop string and what follows never come back, and a
  streamed piece that could begin one is held back until it is known not to).

Standard library only at import; ``transformers`` is imported when a renderer is built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_core.api import ChatRequest, ChatTarget, FtCoreError, SamplingOptions

#: The name the run's adapter is served under.
ADAPTER_NAME = "ft-core-adapter"


@dataclass(frozen=True)
class Served:
    """What to load: ``model`` (the base model of an adapter, else the model), ``tokenizer`` (the folder whose
    tokenizer carries the chat template), ``adapter`` (the PEFT LoRA folder, ``None``: no adapter) and the
    adapter's rank."""

    model: str
    tokenizer: str
    adapter: str | None = None
    lora_rank: int | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FtCoreError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise FtCoreError(f"{path}: expected a JSON object")
    return data


def locate(target: ChatTarget) -> Served:
    """The base model and adapter of ``target`` (see the module docstring)."""
    folder = Path(target.tokenizer_path)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        return Served(model=str(folder), tokenizer=str(folder))
    config = _read_json(config_path)
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise FtCoreError(
            f"{folder}: a {kind} adapter; this engine serves LoRA adapters only (use --engine hf)"
        )
    if config.get("use_dora"):
        raise FtCoreError(f"{folder}: a DoRA adapter, which this engine cannot serve; use --engine hf")
    base: str | None = None
    manifest = folder.parent / "manifest.json"
    if manifest.is_file():
        base = ((_read_json(manifest).get("base_model") or {}).get("path")) or None
    base = base or config.get("base_model_name_or_path")
    if not base:
        raise FtCoreError(f"{folder}: the adapter names no base model (no manifest.json beside it)")
    rank = config.get("r")
    return Served(
        model=str(base),
        tokenizer=str(folder),
        adapter=str(folder),
        lora_rank=int(rank) if isinstance(rank, int) else None,
    )


def refuse_images(request: ChatRequest, engine: str) -> None:
    """A clear error for a request with images: this engine serves text only."""
    if request.images:
        raise FtCoreError(
            f"the {engine} engine takes text only, but the request has {len(request.images)} image(s); "
            "serve vision runs with --engine hf"
        )


class PromptRenderer:
    """Renders requests with the target's tokenizer and chat template, as the ``hf`` engine does."""

    def __init__(self, target: ChatTarget, engine: str, tokenizer: Any = None) -> None:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path)
        self.tokenizer = tokenizer
        self.engine = engine
        self.template_kwargs = dict(target.template_kwargs)
        self.stop_words = list(target.stop_words)
        if not tokenizer.chat_template:
            raise FtCoreError(
                "the tokenizer has no chat template: give a run folder (its tokenizer carries the run's "
                "template) or a model whose tokenizer_config.json has a chat_template"
            )

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        """The prompt's token ids: the chat template with the generation prompt and ``tools``."""
        refuse_images(request, self.engine)
        encoded = self.tokenizer.apply_chat_template(
            request.messages,
            tools=list(request.tools) if request.tools is not None else None,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            **self.template_kwargs,
        )
        return [int(i) for i in encoded["input_ids"]]

    def stops(self, sampling: SamplingOptions) -> tuple[str, ...]:
        """The run template's stop words and the request's stop strings."""
        return tuple(dict.fromkeys((*self.stop_words, *sampling.stop)))

    def stop_token_ids(self, stops: Sequence[str]) -> list[int]:
        """Ids of the stop strings that are single added (e.g. special) tokens: decoding skips special tokens,
        so a stop string alone would not see them. Other stop strings are matched on the text."""
        added = self.tokenizer.get_added_vocab()
        return list(dict.fromkeys(int(added[stop]) for stop in stops if stop in added))


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Index in ``text`` where the earliest stop string (at or after ``start``) begins, or ``None``."""
    found = [i for i in (text.find(stop, start) for stop in stops) if i >= 0]
    return min(found) if found else None


def safe_end(text: str, stops: Sequence[str]) -> int:
    """How much of ``text`` can be shown: all but its longest suffix that could begin a stop string."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return len(text) - held


class StopFilter:
    """Turns a growing reply into the pieces to show, cut at the first stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add ``piece`` (new text); return what can be shown now."""
        if self.stopped:
            return ""
        self.text += piece
        cut = find_stop(
            self.text, self.stops, max(0, self.sent - max((len(s) for s in self.stops), default=0))
        )
        if cut is not None:
            self.stopped = True
        upto = cut if cut is not None else safe_end(self.text, self.stops)
        shown = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return shown

    def finish(self) -> str:
        """What is left to show at the end of the reply."""
        if self.stopped:
            return ""
        rest = self.text[self.sent :]
        self.sent = len(self.text)
        return rest


def cumulative_delta(previous: str, text: str) -> str:
    """The new text of a streamed output that repeats what came before (``text`` starts with ``previous``), or
    ``text`` itself when the backend streams increments."""
    return text[len(previous) :] if text.startswith(previous) else text


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether one was found."""
    index = find_stop(text, stops)
    return (text, False) if index is None else (text[:index], True)
