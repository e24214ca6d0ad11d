"""The ``vllm`` engine's chat model: a vLLM ``AsyncLLMEngine`` on its own event-loop thread.

Every request (one stream, or all requests of ``generate`` / ``stream_batch`` at once) is submitted to the engine
together, so vLLM batches them natively (continuous batching); each streams its text as it is generated. Prompts
are token ids rendered with the run's chat template exactly as the ``hf`` engine renders them; the run's LoRA
adapter is served on its base model through a ``LoRARequest``; the run template's stop words and the request's stop
strings go to vLLM (stop strings, and single-token stop words as stop token ids) and are cut again on the text.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ft_core.api import FtCoreError
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
from ft_core_vllm import VllmEngineOptions
from ft_core_vllm.serving import (
    ADAPTER_NAME,
    PromptRenderer,
    StopFilter,
    cumulative_delta,
    locate,
    refuse_images,
)

#: LoRA ranks vLLM accepts as ``max_lora_rank``.
_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank_for(rank: int | None) -> int:
    """The smallest rank vLLM supports that holds an adapter of ``rank`` (16 when unknown)."""
    if rank is None:
        return 16
    return next((r for r in _LORA_RANKS if r >= rank), rank)


@dataclass
class _Row:
    """One request in flight."""

    prompt: list[int]
    filter: StopFilter
    raw: str = ""
    tokens: int = 0
    done: bool = False
    future: Any = field(default=None, repr=False)


class VllmChatModel(ChatModel):
    """A model served by vLLM; see the module docstring."""

    accepts_images = False

    def __init__(self, target: ChatTarget, options: VllmEngineOptions) -> None:
        self.description = target.description
        self.options = options
        served = locate(target)
        self.renderer = PromptRenderer(target, "vllm")
        self._vllm = importlib.import_module("vllm")
        self.lora_request: Any = None
        if served.adapter is not None:
            lora = importlib.import_module("vllm.lora.request")
            self.lora_request = lora.LoRARequest(ADAPTER_NAME, 1, served.adapter)
        settings: dict[str, Any] = dict(
            model=served.model,
            tokenizer=served.tokenizer,
            gpu_memory_utilization=options.gpu_memory_utilization,
            max_model_len=options.max_model_len,
            tensor_parallel_size=options.tensor_parallel_size,
            dtype=options.dtype,
            seed=options.seed,
            enforce_eager=options.enforce_eager,
        )
        if options.max_num_seqs is not None:
            settings["max_num_seqs"] = options.max_num_seqs
        if served.adapter is not None:
            settings.update(
                enable_lora=True,
                max_loras=1,
                max_lora_rank=options.max_lora_rank or lora_rank_for(served.lora_rank),
            )
        self.engine_settings = settings
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ft-core-vllm-loop", daemon=True)
        self._thread.start()
        self.engine = self._call(self._make_engine())

    async def _make_engine(self) -> Any:
        args = self._vllm.AsyncEngineArgs(**self.engine_settings)
        return self._vllm.AsyncLLMEngine.from_engine_args(args)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Shut the engine down and stop its event loop."""
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        if self._loop.is_running():
            self._call(self._loop.shutdown_asyncgens())
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ requests
    def sampling_params(self, sampling: SamplingOptions) -> Any:
        """vLLM's ``SamplingParams`` for ``sampling`` with the run's stop words."""
        if sampling.num_beams > 1:
            raise FtCoreError("num_beams: beam search is not available with the vllm engine; use --engine hf")
        stops = self.renderer.stops(sampling)
        greedy = not sampling.samples
        return self._vllm.SamplingParams(
            n=1,
            temperature=0.0 if greedy else sampling.temperature or 1.0,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 and not greedy else -1,
            repetition_penalty=sampling.repetition_penalty,
            max_tokens=sampling.max_new_tokens,
            stop=list(stops),
            stop_token_ids=self.renderer.stop_token_ids(stops),
            seed=None if greedy else sampling.seed,
            skip_special_tokens=True,
            include_stop_str_in_output=False,
        )

    async def _produce(
        self, index: int, prompt: list[int], params: Any, out: queue.Queue[tuple[Any, ...]]
    ) -> None:
        request_id = f"ft-core-{next(self._ids)}"
        try:
            async for result in self.engine.generate(
                {"prompt_token_ids": prompt}, params, request_id, lora_request=self.lora_request
            ):
                completion = result.outputs[0]
                out.put(
                    ("output", index, completion.text, len(completion.token_ids), completion.finish_reason)
                )
                if result.finished:
                    return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer
            out.put(("error", index, exc))
            return
        out.put(("output", index, None, None, "stop"))  # ended without a finished output

    def stream_batch(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatDelta]]:
        """All requests go to vLLM at once (it batches them); deltas come as they are generated."""
        for request in requests:
            refuse_images(request, "vllm")
        rows = [
            _Row(self.renderer.prompt_ids(r), StopFilter(self.renderer.stops(r.sampling))) for r in requests
        ]
        params = [self.sampling_params(r.sampling) for r in requests]
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        for index, (row, param) in enumerate(zip(rows, params, strict=True)):
            row.future = asyncio.run_coroutine_threadsafe(
                self._produce(index, row.prompt, param, events), self._loop
            )
        try:
            while not all(row.done for row in rows):
                event = events.get()
                index, row = event[1], rows[event[1]]
                if row.done:
                    continue
                if event[0] == "error":
                    raise event[2]
                _, _, text, tokens, reason = event
                if text is not None:
                    shown = row.filter.feed(cumulative_delta(row.raw, text))
                    row.raw, row.tokens = text, tokens
                else:
                    shown = ""
                if reason is None and not row.filter.stopped:
                    if shown:
                        yield index, ChatDelta(shown)
                    continue
                row.done = True
                if row.filter.stopped and reason is None:
                    row.future.cancel()  # a stop string the text shows: vLLM aborts a cancelled request
                finish: FinishReason = "length" if reason == "length" and not row.filter.stopped else "stop"
                usage = Usage(prompt_tokens=len(row.prompt), completion_tokens=row.tokens)
                yield index, ChatDelta(shown + row.filter.finish(), finish_reason=finish, usage=usage)
        finally:
            for row in rows:
                if not row.future.done():
                    row.future.cancel()

    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        for _, delta in self.stream_batch([request]):
            yield delta

    def generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """All requests at once (vLLM batches them)."""
        pieces: list[list[str]] = [[] for _ in requests]
        last: list[ChatDelta | None] = [None] * len(requests)
        for index, delta in self.stream_batch(requests):
            pieces[index].append(delta.text)
            last[index] = delta
        responses = []
        for text, final in zip(pieces, last, strict=True):
            if final is None or final.finish_reason is None or final.usage is None:
                raise FtCoreError("vllm: a request ended without its usage")
            responses.append(ChatResponse("".join(text), final.finish_reason, final.usage))
        return responses
