"""The vllm engine without vLLM: registration, options, the missing-backend error, and the engine's logic against a
fake ``vllm`` module that records what the engine asks for and streams canned outputs."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import ft_core_vllm
from ft_core.api import ChatRequest, ChatTarget, FtCoreError, OptionsError, SamplingOptions
from ft_core.api.toolcalls import hermes
from ft_core.testing.import_light import check_import_light


@pytest.fixture(scope="module")
def tokenizer_folder() -> str:
    from ft_core.engine.models.embedded import resolve_model_path

    return resolve_model_path("smollm2-135m-instruct", None)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_folder: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_folder)


def test_registers_vllm(make_plugins):
    plugins = make_plugins(ft_core_vllm)
    assert "vllm" in plugins.names("inference_engine")
    assert plugins.get("inference_engine", "vllm").options_schema is ft_core_vllm.VllmEngineOptions


def test_registration_is_import_light():
    check_import_light("ft_core_vllm", forbidden={"vllm", "torch", "transformers"})


def test_options_schema_defaults_and_validation():
    options = ft_core_vllm.VllmEngineOptions()
    assert (options.gpu_memory_utilization, options.max_model_len, options.tensor_parallel_size) == (
        0.9,
        None,
        1,
    )
    for bad in (
        {"gpu_memory_utilization": 0},
        {"gpu_memory_utilization": 1.5},
        {"max_model_len": 0},
        {"tensor_parallel_size": 0},
        {"dtype": "int3"},
        {"max_lora_rank": 0},
        {"max_num_seqs": 0},
    ):
        with pytest.raises(OptionsError):
            ft_core_vllm.VllmEngineOptions(**bad)


def test_missing_backend_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # an import of vllm fails
    target = ChatTarget("t", "/nowhere", load_model=lambda dtype: None)
    with pytest.raises(FtCoreError, match=r"pip install vllm.*CUDA GPU|CUDA GPU.*pip install vllm"):
        ft_core_vllm.VllmEngine().load(target, ft_core_vllm.VllmEngineOptions())


def test_no_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setattr(ft_core_vllm, "cuda_device_count", lambda: 0)
    with pytest.raises(FtCoreError, match=r"needs a CUDA GPU.*no CUDA GPU is present"):
        ft_core_vllm.check_backend(ft_core_vllm.VllmEngineOptions())


# ---------------------------------------------------------------------------------------------- the fake backend
@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class Output:
    prompt_token_ids: list[int]
    outputs: list[Completion]
    finished: bool


@dataclass
class FakeBackend:
    """Records engine arguments, sampling params, prompts and LoRA requests; replies ``replies`` in order."""

    replies: list[tuple[str, str]] = field(default_factory=list)  # (text, finish_reason)
    engine_args: dict[str, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def module(self) -> types.ModuleType:
        backend = self
        vllm = types.ModuleType("vllm")

        class AsyncEngineArgs:
            def __init__(self, **kwargs: Any) -> None:
                backend.engine_args = kwargs

        class SamplingParams:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs

        class Engine:
            async def generate(
                self, prompt: Any, params: Any, request_id: str, lora_request: Any = None
            ) -> Any:
                backend.calls.append(
                    {"prompt": prompt, "params": params.kwargs, "id": request_id, "lora": lora_request}
                )
                text, reason = backend.replies[len(backend.calls) - 1]
                for size in range(2, len(text), 3):  # cumulative outputs, a few characters at a time
                    yield Output(
                        prompt["prompt_token_ids"], [Completion(text[:size], [0] * size, None)], False
                    )
                yield Output(prompt["prompt_token_ids"], [Completion(text, [0] * len(text), reason)], True)

        class AsyncLLMEngine:
            @staticmethod
            def from_engine_args(args: Any) -> Engine:
                return Engine()

        class LoRARequest:
            def __init__(self, name: str, int_id: int, path: str) -> None:
                self.name, self.int_id, self.path = name, int_id, path

        vllm.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
        vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
        vllm.AsyncLLMEngine = AsyncLLMEngine  # type: ignore[attr-defined]
        request_module = types.ModuleType("vllm.lora.request")
        request_module.LoRARequest = LoRARequest  # type: ignore[attr-defined]
        self.modules = {
            "vllm": vllm,
            "vllm.lora": types.ModuleType("vllm.lora"),
            "vllm.lora.request": request_module,
        }
        return vllm


@pytest.fixture
def backend(monkeypatch) -> FakeBackend:
    fake = FakeBackend()
    fake.module()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(ft_core_vllm, "cuda_device_count", lambda: 1)
    return fake


@pytest.fixture
def run_folder(tmp_path: Path, tokenizer: Any) -> Path:
    """A run folder as ft-core writes it: manifest.json naming the base, model/ with the adapter and tokenizer."""
    artefact = tmp_path / "run" / "model"
    tokenizer.save_pretrained(artefact)
    (artefact / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "base_model_name_or_path": "elsewhere"}), encoding="utf-8"
    )
    (tmp_path / "run" / "manifest.json").write_text(
        json.dumps({"base_model": {"path": "/models/base"}}), encoding="utf-8"
    )
    return artefact


def _load(run_folder: Path, **target: Any) -> Any:
    chat_target = ChatTarget("run", str(run_folder), load_model=lambda dtype: None, **target)
    return ft_core_vllm.VllmEngine().load(chat_target, ft_core_vllm.VllmEngineOptions(max_model_len=2048))


def test_serves_the_base_with_the_adapter(backend, run_folder):
    backend.replies = [("Hi there!", "stop")]
    model = _load(run_folder)
    try:
        response = model.complete(ChatRequest([{"role": "user", "content": "Hello"}]))
    finally:
        model.close()
    args = backend.engine_args
    assert args["model"] == "/models/base" and args["tokenizer"] == str(run_folder)
    assert args["enable_lora"] is True and args["max_lora_rank"] == 8 and args["max_model_len"] == 2048
    lora = backend.calls[0]["lora"]
    assert (lora.name, lora.path) == ("ft-core-adapter", str(run_folder))
    assert response.text == "Hi there!" and response.finish_reason == "stop"


def test_prompts_stops_sampling_and_usage(backend, run_folder, tokenizer):
    backend.replies = [("Sure.", "stop"), ("a b c d", "length")]
    model = _load(run_folder, stop_words=["<|im_end|>", "###"], template_kwargs={"enable_thinking": False})
    messages = [{"role": "user", "content": "Hello"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    try:
        responses = model.generate(
            [
                ChatRequest(messages, tools=tools),
                ChatRequest(
                    messages,
                    sampling=SamplingOptions(
                        temperature=0.7, top_p=0.9, max_new_tokens=7, seed=3, stop=("END",)
                    ),
                ),
            ]
        )
    finally:
        model.close()
    expected = tokenizer.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        enable_thinking=False,
    )["input_ids"]
    assert backend.calls[0]["prompt"] == {"prompt_token_ids": list(expected)}
    greedy, sampled = backend.calls[0]["params"], backend.calls[1]["params"]
    assert greedy["temperature"] == 0 and greedy["top_p"] == 1.0 and greedy["seed"] is None
    assert greedy["stop"] == ["<|im_end|>", "###"] and greedy["stop_token_ids"] == [2]
    assert greedy["skip_special_tokens"] is True and greedy["include_stop_str_in_output"] is False
    assert (sampled["temperature"], sampled["top_p"], sampled["max_tokens"], sampled["seed"]) == (
        0.7,
        0.9,
        7,
        3,
    )
    assert sampled["stop"] == ["<|im_end|>", "###", "END"]
    assert [(r.text, r.finish_reason) for r in responses] == [("Sure.", "stop"), ("a b c d", "length")]
    assert responses[0].usage.prompt_tokens == len(expected) and responses[0].usage.completion_tokens == 5
    assert responses[1].usage.completion_tokens == 7


def test_a_stop_string_in_the_text_is_cut_while_streaming(backend, run_folder):
    backend.replies = [("Hello ### more text after", "length")]
    model = _load(run_folder, stop_words=["###"])
    try:
        deltas = list(model.stream(ChatRequest([{"role": "user", "content": "hi"}])))
    finally:
        model.close()
    assert "".join(d.text for d in deltas) == "Hello "
    assert all("#" not in d.text for d in deltas)
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert len(deltas) > 2  # streamed in pieces


def test_stream_batch_interleaves_and_ends_every_request(backend, run_folder):
    backend.replies = [("first answer", "stop"), ("second answer", "stop")]
    model = _load(run_folder)
    try:
        pairs = list(model.stream_batch([ChatRequest([{"role": "user", "content": q}]) for q in ("a", "b")]))
    finally:
        model.close()
    texts = {i: "".join(d.text for j, d in pairs if j == i) for i in (0, 1)}
    assert set(texts.values()) == {"first answer", "second answer"}
    assert sum(1 for _, d in pairs if d.finish_reason is not None) == 2


def test_tool_calls_come_back_for_the_templates_parser(backend, run_folder):
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    backend.replies = [(call, "stop")]
    model = _load(run_folder, template="qwen")
    try:
        response = model.complete(ChatRequest([{"role": "user", "content": "weather?"}]))
    finally:
        model.close()
    content, calls = hermes(response.text)
    assert content == "" and calls[0]["function"]["name"] == "get_weather"
    assert calls[0]["function"]["arguments"] == {"city": "Paris"}


def test_images_are_refused(backend, run_folder):
    model = _load(run_folder)
    try:
        assert model.accepts_images is False
        with pytest.raises(FtCoreError, match="text only"):
            model.complete(ChatRequest([{"role": "user", "content": "<image>what?"}], images=[b"png"]))
    finally:
        model.close()


def test_a_plain_model_is_served_without_lora(backend, tokenizer_folder):
    backend.replies = [("ok", "stop")]
    model = ft_core_vllm.VllmEngine().load(
        ChatTarget("m", tokenizer_folder, load_model=lambda dtype: None), ft_core_vllm.VllmEngineOptions()
    )
    try:
        model.complete(ChatRequest([{"role": "user", "content": "hi"}]))
    finally:
        model.close()
    assert backend.engine_args["model"] == tokenizer_folder and "enable_lora" not in backend.engine_args
    assert backend.calls[0]["lora"] is None


@pytest.mark.gpu
def test_real_generation_on_a_gpu(tokenizer_folder):
    pytest.importorskip("vllm")
    if ft_core_vllm.cuda_device_count() < 1:
        pytest.skip("no CUDA GPU")
    target = ChatTarget("embedded", tokenizer_folder, load_model=lambda dtype: None)
    model = ft_core_vllm.VllmEngine().load(target, ft_core_vllm.VllmEngineOptions(gpu_memory_utilization=0.3))
    try:
        response = model.complete(
            ChatRequest([{"role": "user", "content": "Say hi"}], sampling=SamplingOptions(max_new_tokens=8))
        )
    finally:
        model.close()
    assert response.usage.completion_tokens >= 1
