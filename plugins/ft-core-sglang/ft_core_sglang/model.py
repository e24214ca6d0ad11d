"""The ``sglang`` engine's chat model: an offline ``sglang.Engine`` in this process.

``generate`` and ``stream_batch`` hand all their requests to one ``Engine.generate`` call (SGLang batches them
natively); ``stream`` streams one request (``stream=True``). SGLang's offline engine streams one request per call,
so ``stream_batch`` of several requests answers them together and yields each reply whole. Calls to the engine are
serialised (it runs its own event loop). Prompts are token ids rendered with the run's chat template exactly as the
``hf`` engine renders them; the run's LoRA adapter is served on its base model (``lora_paths`` / ``lora_path``);
the run template's stop words and the request's stop strings go to SGLang (stop strings, and single added tokens as
stop token ids) and are cut again on the text.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
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
from ft_core_sglang import SglangEngineOptions
from ft_core_sglang.serving import (
    ADAPTER_NAME,
    PromptRenderer,
    StopFilter,
    cumulative_delta,
    cut_at_stop,
    locate,
    refuse_images,
)


def _finish(meta: dict[str, Any]) -> str | None:
    """SGLang's finish reason type (``stop``, ``length``, ``abort``), ``None`` while running."""
    reason = meta.get("finish_reason")
    if isinstance(reason, dict):
        return str(reason.get("type"))
    return None if reason is None else str(reason)


class SglangChatModel(ChatModel):
    """A model served by SGLang; see the module docstring."""

    accepts_images = False

    def __init__(self, target: ChatTarget, options: SglangEngineOptions) -> None:
        self.description = target.description
        self.options = options
        served = locate(target)
        self.renderer = PromptRenderer(target, "sglang")
        self.lora_name = ADAPTER_NAME if served.adapter is not None else None
        settings: dict[str, Any] = dict(
            model_path=served.model,
            tokenizer_path=served.tokenizer,
            tp_size=options.tensor_parallel_size,
            dtype=options.dtype,
            random_seed=options.seed,
        )
        optional = {
            "mem_fraction_static": options.gpu_memory_utilization,
            "context_length": options.max_model_len,
            "max_running_requests": options.max_running_requests,
        }
        settings.update({key: value for key, value in optional.items() if value is not None})
        if served.adapter is not None:
            settings["lora_paths"] = [f"{ADAPTER_NAME}={served.adapter}"]
            if options.max_lora_rank is not None:
                settings["max_lora_rank"] = options.max_lora_rank
        self.engine_settings = settings
        self._lock = threading.Lock()
        sglang = importlib.import_module("sglang")
        self.engine = sglang.Engine(**settings)

    def close(self) -> None:
        """Shut the engine down."""
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            shutdown()

    def sampling_params(self, sampling: SamplingOptions) -> dict[str, Any]:
        """SGLang's sampling parameters for ``sampling`` with the run's stop words."""
        if sampling.num_beams > 1:
            raise FtCoreError(
                "num_beams: beam search is not available with the sglang engine; use --engine hf"
            )
        stops = self.renderer.stops(sampling)
        greedy = not sampling.samples
        params: dict[str, Any] = dict(
            temperature=0.0 if greedy else sampling.temperature or 1.0,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 and not greedy else -1,
            repetition_penalty=sampling.repetition_penalty,
            max_new_tokens=sampling.max_new_tokens,
            stop=list(stops),
            stop_token_ids=self.renderer.stop_token_ids(stops),
            skip_special_tokens=True,
        )
        if sampling.seed is not None and not greedy:
            params["sampling_seed"] = sampling.seed
        return params

    def _response(self, prompt: list[int], output: dict[str, Any], stops: tuple[str, ...]) -> ChatResponse:
        meta = output.get("meta_info") or {}
        text, cut = cut_at_stop(str(output.get("text", "")), stops)
        finish: FinishReason = "length" if _finish(meta) == "length" and not cut else "stop"
        usage = Usage(
            prompt_tokens=int(meta.get("prompt_tokens", len(prompt))),
            completion_tokens=int(meta.get("completion_tokens", 0)),
        )
        return ChatResponse(text, finish, usage)

    def generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """One ``Engine.generate`` call for all requests (SGLang batches them)."""
        if not requests:
            return []
        for request in requests:
            refuse_images(request, "sglang")
        prompts = [self.renderer.prompt_ids(r) for r in requests]
        with self._lock:
            outputs = self.engine.generate(
                input_ids=prompts,
                sampling_params=[self.sampling_params(r.sampling) for r in requests],
                lora_path=[self.lora_name] * len(requests) if self.lora_name else None,
            )
        if isinstance(outputs, dict):
            outputs = [outputs]
        return [
            self._response(prompt, output, self.renderer.stops(request.sampling))
            for prompt, output, request in zip(prompts, outputs, requests, strict=True)
        ]

    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        prompt = self.renderer.prompt_ids(request)
        stops = self.renderer.stops(request.sampling)
        text_filter, raw = StopFilter(stops), ""
        meta: dict[str, Any] = {}
        with self._lock:
            chunks = self.engine.generate(
                input_ids=prompt,
                sampling_params=self.sampling_params(request.sampling),
                lora_path=self.lora_name,
                stream=True,
            )
            try:
                for chunk in chunks:
                    text = str(chunk.get("text", ""))
                    shown = text_filter.feed(cumulative_delta(raw, text))
                    raw, meta = (text if text.startswith(raw) else raw + text), chunk.get("meta_info") or {}
                    if text_filter.stopped:
                        yield ChatDelta(shown)
                        break
                    if shown:
                        yield ChatDelta(shown)
            finally:
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()  # the consumer went away or a stop string showed: stop generating
        finish: FinishReason = "length" if _finish(meta) == "length" and not text_filter.stopped else "stop"
        usage = Usage(
            prompt_tokens=int(meta.get("prompt_tokens", len(prompt))),
            completion_tokens=int(meta.get("completion_tokens", 0)),
        )
        yield ChatDelta(text_filter.finish(), finish_reason=finish, usage=usage)

    def stream_batch(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatDelta]]:
        """One request streams; several are generated together (one batched call) and each reply comes whole."""
        if len(requests) == 1:
            for delta in self.stream(requests[0]):
                yield 0, delta
            return
        for index, response in enumerate(self.generate(requests)):
            yield index, ChatDelta(response.text, finish_reason=response.finish_reason, usage=response.usage)
