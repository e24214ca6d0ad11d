"""The built-in inference engine: ``transformers`` generate with token streaming."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ft_core.compat import quiet_upstream_warnings
from ft_core.components import InferenceEngine
from ft_core.inference.target import ChatTarget


@dataclass(frozen=True)
class HfEngineOptions:
    """Options of the ``hf`` engine."""

    #: ``auto`` = CUDA when present, else CPU.
    device: str = "auto"


class HfChatModel:
    """A loaded model + tokenizer that streams replies."""

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
        self.tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path)
        self.model = target.load_model(dtype).to(device).eval()
        self.device = device
        stop_ids = {self.tokenizer.eos_token_id}
        for word in target.stop_words:
            ids = self.tokenizer.convert_tokens_to_ids(word)
            if isinstance(ids, int) and ids != self.tokenizer.unk_token_id:
                stop_ids.add(ids)
        self.stop_ids = sorted(i for i in stop_ids if i is not None)

    def chat(
        self, messages: list[dict[str, Any]], max_new_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        """Stream the assistant's reply to ``messages`` piece by piece."""
        from transformers import TextIteratorStreamer

        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = (
            {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        )
        kwargs = dict(
            **inputs,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id or self.stop_ids[0],
            streamer=streamer,
            **sampling,
        )
        worker = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        worker.start()
        yield from streamer
        worker.join()


class HfEngine(InferenceEngine):
    """Generate with Hugging Face transformers (CPU or one GPU)."""

    options_schema = HfEngineOptions
    description = "transformers generate with streaming"

    def load(self, target: ChatTarget, options: Any) -> HfChatModel:
        return HfChatModel(target, options if isinstance(options, HfEngineOptions) else HfEngineOptions())
