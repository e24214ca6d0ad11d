"""The built-in inference engine: ``transformers`` generate, streamed through ``TextIteratorStreamer``.

Stops at the tokenizer's EOS, at the run template's stop words (as token ids where a stop word is one token)
and at stop strings (the template's stop words and ``SamplingOptions.stop``), matched on the decoded text so a
stop string may span tokens; a stop string and anything after it are never returned. Batched ``generate`` pads
on the left and runs one ``generate`` call per group of requests with equal sampling settings; batched
``stream_batch`` does the same for streams, each row with its own ``max_new_tokens``.

Images (``ChatRequest.images``) are taken by a vision-language target (``ChatTarget.vision``): the prompt is rendered
with the run's template, each image expanded to the processor's tokens as in training, and the processed images go
to ``generate`` with the ids; requests with images batch like any others (one ``generate`` call gets the images of
all its rows, in row order). A text-only target refuses a request with images.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from ft_core.api.components import InferenceEngine
from ft_core.api.errors import FtCoreError, OptionsError
from ft_core.api.inference import (
    ChatDelta,
    ChatModel,
    ChatRequest,
    ChatResponse,
    ChatTarget,
    FinishReason,
    SamplingOptions,
    Usage,
)
from ft_core.engine.compat import quiet_upstream_warnings
from ft_core.engine.inference.images import VisionPrompter, refuse_images

if TYPE_CHECKING:
    from transformers import BatchEncoding


@dataclass(frozen=True)
class HfEngineOptions:
    """Options of the ``hf`` engine."""

    #: ``auto`` = CUDA when present, else CPU; or a torch device such as ``cpu``, ``cuda:1``.
    device: str = "auto"
    #: Most requests that one batched ``generate`` call answers together (``ChatModel.generate``).
    max_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise OptionsError(f"max_batch_size must be >= 1, got {self.max_batch_size}")


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Index in ``text`` where the earliest stop string (occurring at or after ``start``) begins, or ``None``."""
    found = [i for i in (text.find(stop, start) for stop in stops) if i >= 0]
    return min(found) if found else None


def safe_end(text: str, stops: Sequence[str]) -> int:
    """How much of ``text`` can be emitted: all but its longest suffix that could begin a stop string."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return len(text) - held


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether one was found."""
    index = find_stop(text, stops)
    return (text, False) if index is None else (text[:index], True)


def _stopping_criteria_class() -> type:
    import torch
    from transformers import StoppingCriteria

    class RowStops(StoppingCriteria):
        """Per-row stop conditions: EOS / stop-word token ids, stop strings on the decoded completion, and
        cancellation (the consumer of a stream went away). Records how many tokens each row generated."""

        def __init__(
            self,
            tokenizer: Any,
            prompt_length: int,
            stop_ids: set[int],
            stops: list[tuple[str, ...]],
            extra_ids: list[set[int]],
            cancel: threading.Event | None = None,
        ) -> None:
            self.tokenizer = tokenizer
            self.prompt_length = prompt_length
            self.stop_ids = stop_ids
            self.stops = stops
            self.extra_ids = extra_ids
            self.cancel = cancel
            #: Completion tokens of each row when it stopped (``None``: still running or ran out of tokens).
            self.stopped_at: list[int | None] = [None] * len(stops)
            #: Whether the row's last token is a stop token (EOS, stop word), which the reply leaves out.
            self.by_token: list[bool] = [False] * len(stops)
            longest = max((len(s) for row in stops for s in row), default=0)
            # A stop string of n characters spans at most 4n byte-level tokens; a few more for safety.
            self.window = 4 * longest + 8

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            generated = input_ids.shape[1] - self.prompt_length
            cancelled = self.cancel is not None and self.cancel.is_set()
            done = []
            for row, stops in enumerate(self.stops):
                if self.stopped_at[row] is None and generated > 0:
                    completion = input_ids[row, self.prompt_length :]
                    last = int(completion[-1])
                    if last in self.stop_ids or last in self.extra_ids[row]:
                        self.stopped_at[row] = generated
                        self.by_token[row] = True
                    elif stops:
                        tail = self.tokenizer.decode(completion[-self.window :], skip_special_tokens=True)
                        if any(stop in tail for stop in stops):
                            self.stopped_at[row] = generated
                done.append(cancelled or self.stopped_at[row] is not None)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return RowStops


def _streamer_class() -> type:
    from transformers import TextIteratorStreamer

    class Streamer(TextIteratorStreamer):
        """A ``TextIteratorStreamer`` that never shows the token that ended generation (EOS or a stop word),
        even when it is not a special token."""

        def __init__(self, tokenizer: Any, hidden_ids: set[int]) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.hidden_ids = hidden_ids

        def put(self, value: Any) -> None:
            if (
                not self.next_tokens_are_prompt
                and value.numel() == 1
                and int(value.reshape(-1)[0]) in self.hidden_ids
            ):
                return
            super().put(value)

    return Streamer


def _row_limits_class() -> type:
    import torch
    from transformers import StoppingCriteria

    class RowLimits(StoppingCriteria):
        """Ends each row at its own ``max_new_tokens`` (a batch generates up to the largest of them)."""

        def __init__(self, prompt_length: int, limits: list[int]) -> None:
            self.prompt_length = prompt_length
            self.limits = limits

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            generated = input_ids.shape[1] - self.prompt_length
            done = [generated >= limit for limit in self.limits]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return RowLimits


def _generation_key(s: SamplingOptions) -> tuple[Any, ...]:
    """What requests generated in one call must share (their stop strings and token limits may differ)."""
    sampled = (s.temperature, s.top_p, s.top_k, s.seed) if s.samples else ()
    return (s.samples, *sampled, s.num_beams, s.length_penalty, s.repetition_penalty)


def _batch_streamer_class() -> type:
    from transformers.generation.streamers import BaseStreamer

    class BatchStreamer(BaseStreamer):
        """Hands the tokens of each generation step (one per row) to :attr:`steps`; ``None`` ends it. The prompt,
        which ``generate`` puts first, is skipped."""

        def __init__(self) -> None:
            self.steps: queue.Queue[list[int] | None] = queue.Queue()
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if self.prompt_seen:
                self.steps.put([int(token) for token in value.reshape(-1).tolist()])
            self.prompt_seen = True

        def end(self) -> None:
            self.steps.put(None)

    return BatchStreamer


@dataclass
class _StreamedRow:
    """One request of a batched stream: its completion so far and how much of its text was sent."""

    prompt_length: int
    limit: int
    stops: tuple[str, ...]
    #: Tokens that end the row and are not shown: EOS, one-token stop words, request stops that are added tokens.
    stop_ids: set[int]
    tokens: list[int] = field(default_factory=list)
    #: Completion tokens, the ending stop token included.
    count: int = 0
    text: str = ""
    sent: int = 0
    done: bool = False

    def advance(self, token: int, decode: Callable[[list[int]], str]) -> ChatDelta | None:
        """Take the row's next generated token; return what can be sent now (the last delta once it ends)."""
        if self.done:
            return None  # a finished row gets padding until the whole batch ends
        self.count += 1
        if token in self.stop_ids:
            return self.close("stop")
        self.tokens.append(token)
        self.text = decode(self.tokens)
        cut = find_stop(self.text, self.stops, self.sent)
        if cut is not None:
            return self.close("stop", cut)
        if self.count >= self.limit:
            return self.close("length")
        upto = safe_end(self.text, self.stops)
        while upto > self.sent and self.text[upto - 1] == "\ufffd":
            upto -= 1  # the first bytes of a character that the next tokens complete
        if upto <= self.sent:
            return None
        delta = ChatDelta(self.text[self.sent : upto])
        self.sent = upto
        return delta

    def close(self, finish: FinishReason, end: int | None = None) -> ChatDelta:
        """The row's last delta: the rest of its text (up to ``end``), why it ended and its usage."""
        self.done = True
        rest = self.text[self.sent : len(self.text) if end is None else end]
        return ChatDelta(rest, finish_reason=finish, usage=Usage(self.prompt_length, self.count))


class HfChatModel(ChatModel):
    """A loaded model + tokenizer answering chat requests with ``transformers`` generate."""

    def __init__(self, target: ChatTarget, options: HfEngineOptions) -> None:
        import torch
        from transformers import AutoTokenizer

        quiet_upstream_warnings()
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = (
            torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        )
        self.options = options
        self.tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path)
        self.model = target.load_model(dtype).to(device).eval()
        self.device = device
        stop_ids: set[int] = set()
        eos = self.tokenizer.eos_token_id
        model_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for token_id in [eos, *(model_eos if isinstance(model_eos, list) else [model_eos])]:
            if isinstance(token_id, int):
                stop_ids.add(token_id)
        for word in target.stop_words:
            token_id = self._single_token_id(word)
            if token_id is not None:
                stop_ids.add(token_id)
        if not stop_ids:
            raise FtCoreError(
                f"{target.tokenizer_path}: the tokenizer has no EOS token and no stop word is set"
            )
        self.stop_ids = sorted(stop_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if isinstance(pad, int) else self.stop_ids[0]
        #: Stop strings of every request: the template's stop words (a stop word several tokens long is only
        #: caught as text) and the EOS text (shown when the EOS is not a special token).
        words = [*target.stop_words, self.tokenizer.eos_token or ""]
        self.stop_words = tuple(dict.fromkeys(w for w in words if w))
        self.template_kwargs = dict(target.template_kwargs)
        self.description = target.description
        self.vision = (
            VisionPrompter(target.vision, self.tokenizer, self.template_kwargs) if target.vision else None
        )
        self.accepts_images = self.vision is not None
        self._lock = threading.Lock()
        self._row_stops = _stopping_criteria_class()
        self._streamer = _streamer_class()
        self._row_limits = _row_limits_class()
        self._batch_streamer = _batch_streamer_class()

    # ------------------------------------------------------------------ helpers
    def _single_token_id(self, word: str) -> int | None:
        """The id of ``word`` when it is one token of the vocabulary (as written), else ``None``."""
        token_id = self.tokenizer.convert_tokens_to_ids(word)
        if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
            return token_id
        return None

    def _added_token_ids(self, stops: Sequence[str]) -> set[int]:
        """Ids of request stop strings that are single added (e.g. special) tokens: they end a row as tokens,
        since decoding may skip them."""
        added = self.tokenizer.get_added_vocab()
        return {added[s] for s in stops if s in added}

    def _stops(self, sampling: SamplingOptions) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.stop_words, *(s for s in sampling.stop if s))))

    def _prompt(self, request: ChatRequest) -> tuple[list[int], list[Any]]:
        """The prompt's token ids and its opened images (a vision target: images expanded to their tokens)."""
        if self.vision is not None:
            return self.vision.prompt(request)
        return self.prompt_ids(request), []

    def _image_inputs(self, images: list[Any], input_ids: Any) -> dict[str, Any]:
        """``generate``'s image arguments for a batch with ``images`` (of all rows, in order); none for text."""
        if self.vision is None:
            return {}
        return self.vision.inputs(images, input_ids, self.model.dtype)

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        """The prompt of ``request`` as token ids: the tokenizer's chat template (the run's, for a run folder)
        with the generation prompt, and ``tools`` passed to the template."""
        if self.vision is not None:
            return self.vision.prompt(request)[0]
        refuse_images(request, self.description)
        if not self.tokenizer.chat_template:
            raise FtCoreError(
                "the tokenizer has no chat template: give a run folder (its tokenizer carries the run's "
                "template) or a model whose tokenizer_config.json has a chat_template"
            )
        encoded = cast(  # return_dict=True gives a BatchEncoding; transformers annotates every return form
            "BatchEncoding",
            self.tokenizer.apply_chat_template(
                request.messages,
                tools=list(request.tools) if request.tools is not None else None,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **self.template_kwargs,
            ),
        )
        return list(encoded["input_ids"])

    def _generation_config(self, sampling: SamplingOptions) -> Any:
        from transformers import GenerationConfig

        settings: dict[str, Any] = dict(
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        if sampling.samples:
            settings.update(
                do_sample=True,
                temperature=sampling.temperature or 1.0,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
            )
        else:
            settings.update(do_sample=False)
        if sampling.num_beams > 1:
            settings.update(num_beams=sampling.num_beams, length_penalty=sampling.length_penalty)
        if sampling.repetition_penalty != 1.0:
            settings["repetition_penalty"] = sampling.repetition_penalty
        return GenerationConfig(**settings)

    def _run_generate(self, sampling: SamplingOptions, **kwargs: Any) -> Any:
        """``generate`` with ``sampling``. Beam search keeps several candidates per row until the end, so it runs
        without the streamer and the per-row stop criteria (stop strings are cut from the reply afterwards) and
        then hands the finished tokens to the streamer, step by step as generation would have."""
        import torch

        streamer = kwargs.pop("streamer", None) if sampling.num_beams > 1 else None
        if sampling.num_beams > 1:
            kwargs.pop("stopping_criteria", None)
        with self._lock, torch.inference_mode():
            if sampling.seed is not None and sampling.samples:
                torch.manual_seed(sampling.seed)
            sequences = self.model.generate(generation_config=self._generation_config(sampling), **kwargs)
        if streamer is not None:
            width = kwargs["input_ids"].shape[1]
            streamer.put(kwargs["input_ids"].cpu())
            for step in range(width, sequences.shape[1]):
                streamer.put(sequences[:, step].cpu())
            streamer.end()
        return sequences

    # ------------------------------------------------------------------ ChatModel
    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        import torch
        from transformers import StoppingCriteriaList

        sampling = request.sampling
        prompt, images = self._prompt(request)
        stops = self._stops(sampling)
        cancel = threading.Event()
        extra_ids = self._added_token_ids(sampling.stop)
        criteria = self._row_stops(
            self.tokenizer, len(prompt), set(self.stop_ids), [stops], [extra_ids], cancel
        )
        streamer = self._streamer(self.tokenizer, set(self.stop_ids) | extra_ids)
        input_ids = torch.tensor([prompt], device=self.model.device)
        image_inputs = self._image_inputs(images, input_ids)
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["sequences"] = self._run_generate(
                    sampling,
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    stopping_criteria=StoppingCriteriaList([criteria]),
                    streamer=streamer,
                    **image_inputs,
                )
            except BaseException as exc:  # handed to the consumer below
                outcome["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name="ft-core-generate", daemon=True)
        worker.start()
        text, sent, cut = "", 0, None
        try:
            for piece in streamer:
                if cut is not None:
                    continue  # generation stops at the next step; drain what is in flight
                text += piece
                cut = find_stop(text, stops, sent)
                upto = cut if cut is not None else safe_end(text, stops)
                if upto > sent:
                    yield ChatDelta(text[sent:upto])
                    sent = upto
        finally:
            if cut is None and "error" not in outcome and worker.is_alive():
                cancel.set()  # the consumer went away (or failed): stop generating
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        generated = int(outcome["sequences"].shape[1]) - len(prompt)
        stopped_at = criteria.stopped_at[0]
        finish: FinishReason = "stop" if cut is not None or stopped_at is not None else "length"
        rest = "" if cut is not None else text[sent:]
        usage = Usage(prompt_tokens=len(prompt), completion_tokens=stopped_at or generated)
        yield ChatDelta(rest, finish_reason=finish, usage=usage)

    def generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Batched: requests with equal sampling settings (stop strings aside) share ``generate`` calls."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            s = request.sampling
            key = (s.max_new_tokens, *_generation_key(s))
            groups.setdefault(key, []).append(index)
        responses: list[ChatResponse | None] = [None] * len(requests)
        size = self.options.max_batch_size
        for indexes in groups.values():
            for start in range(0, len(indexes), size):
                chunk = indexes[start : start + size]
                answers = self._generate_batch([requests[i] for i in chunk])
                for index, answer in zip(chunk, answers, strict=True):
                    responses[index] = answer
        return [r for r in responses if r is not None]

    def stream_batch(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatDelta]]:
        """Batched: greedy requests share ``generate`` calls (sampled ones when their temperature, top-p and seed
        are equal), each row with its own ``max_new_tokens`` and stop strings; at most ``max_batch_size`` rows a
        call, calls one after another."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            s = request.sampling
            groups.setdefault(_generation_key(s), []).append(index)
        size = self.options.max_batch_size
        for indexes in groups.values():
            for start in range(0, len(indexes), size):
                chunk = indexes[start : start + size]
                for row, delta in self._stream_rows([requests[i] for i in chunk]):
                    yield chunk[row], delta

    def _stream_rows(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatDelta]]:
        """One ``generate`` call for ``requests`` (left-padded), streamed row by row as tokens arrive."""
        import torch
        from transformers import StoppingCriteriaList

        encoded = [self._prompt(r) for r in requests]
        prompts = [ids for ids, _ in encoded]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor(
            [[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.model.device
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.model.device
        )
        image_inputs = self._image_inputs([image for _, images in encoded for image in images], input_ids)
        extra_ids = [self._added_token_ids(r.sampling.stop) for r in requests]
        rows = [
            _StreamedRow(
                len(p), r.sampling.max_new_tokens, self._stops(r.sampling), set(self.stop_ids) | extra
            )
            for p, r, extra in zip(prompts, requests, extra_ids, strict=True)
        ]
        cancel = threading.Event()
        criteria = self._row_stops(
            self.tokenizer, width, set(self.stop_ids), [row.stops for row in rows], extra_ids, cancel
        )
        limits = self._row_limits(width, [row.limit for row in rows])
        streamer = self._batch_streamer()
        sampling = replace(requests[0].sampling, max_new_tokens=max(row.limit for row in rows))
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self._run_generate(
                    sampling,
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    stopping_criteria=StoppingCriteriaList([criteria, limits]),
                    streamer=streamer,
                    **image_inputs,
                )
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.end()

        def decode(ids: list[int]) -> str:
            return cast(str, self.tokenizer.decode(ids, skip_special_tokens=True))

        worker = threading.Thread(target=work, name="ft-core-generate-batch", daemon=True)
        worker.start()
        try:
            while not all(row.done for row in rows) and (step := streamer.steps.get()) is not None:
                for index, (row, token) in enumerate(zip(rows, step, strict=True)):
                    delta = row.advance(token, decode)
                    if delta is not None:
                        yield index, delta
        finally:
            cancel.set()  # every row ended, or the consumer went away: stop generating
            worker.join()
        if failure:
            raise failure[0]
        # A row still open when generation ended was stopped by a stop string that only the criteria saw.
        for index, row in enumerate(rows):
            if not row.done:
                yield index, row.close("stop" if criteria.stopped_at[index] is not None else "length")

    def _generate_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        import torch
        from transformers import StoppingCriteriaList

        encoded = [self._prompt(r) for r in requests]
        prompts = [ids for ids, _ in encoded]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor(
            [[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.model.device
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.model.device
        )
        image_inputs = self._image_inputs([image for _, images in encoded for image in images], input_ids)
        stops = [self._stops(r.sampling) for r in requests]
        criteria = self._row_stops(
            self.tokenizer,
            width,
            set(self.stop_ids),
            stops,
            [self._added_token_ids(r.sampling.stop) for r in requests],
        )
        sequences = self._run_generate(
            requests[0].sampling,
            input_ids=input_ids,
            attention_mask=attention_mask,
            stopping_criteria=StoppingCriteriaList([criteria]),
            **image_inputs,
        )
        responses = []
        for row, prompt in enumerate(prompts):
            completion = sequences[row, width:]
            count = criteria.stopped_at[row] or int(completion.shape[0])
            shown = completion[: count - 1] if criteria.by_token[row] else completion[:count]
            decoded = cast(str, self.tokenizer.decode(shown, skip_special_tokens=True))  # one row: one str
            text, cut = cut_at_stop(decoded, stops[row])
            finish: FinishReason = "stop" if cut or criteria.stopped_at[row] is not None else "length"
            responses.append(ChatResponse(text, finish, Usage(len(prompt), count)))
        return responses


class HfEngine(InferenceEngine[HfEngineOptions]):
    """Generate with Hugging Face transformers (CPU or one GPU)."""

    options_schema = HfEngineOptions
    description = "transformers generate with streaming, stop strings and batched generation"

    def load(self, target: ChatTarget, options: HfEngineOptions) -> HfChatModel:
        return HfChatModel(target, options if isinstance(options, HfEngineOptions) else HfEngineOptions())
