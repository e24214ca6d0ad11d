"""The sglang engine without SGLang: registration, options, the missing-backend error, and the engine's logic
against a fake ``sglang`` module that records what the engine asks for and returns canned outputs."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import ft_core_sglang
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


def test_registers_sglang(make_plugins):
    plugins = make_plugins(ft_core_sglang)
    assert "sglang" in plugins.names("inference_engine")
    assert plugins.get("inference_engine", "sglang").options_schema is ft_core_sglang.SglangEngineOptions


def test_registration_is_import_light():
    check_import_light("ft_core_sglang", forbidden={"sglang", "torch", "transformers"})


def test_options_schema_defaults_and_validation():
    options = ft_core_sglang.SglangEngineOptions()
    assert (options.gpu_memory_utilization, options.max_model_len, options.tensor_parallel_size) == (
        None,
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
        {"max_running_requests": 0},
    ):
        with pytest.raises(OptionsError):
            ft_core_sglang.SglangEngineOptions(**bad)


def test_missing_backend_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "sglang", None)  # an import of sglang fails
    target = ChatTarget("t", "/nowhere", load_model=lambda dtype: None)
    with pytest.raises(FtCoreError, match=r'needs SGLang.*CUDA GPU: pip install "sglang\[all\]"'):
        ft_core_sglang.SglangEngine().load(target, ft_core_sglang.SglangEngineOptions())


def test_no_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sglang", types.ModuleType("sglang"))
    monkeypatch.setattr(ft_core_sglang, "cuda_device_count", lambda: 0)
    with pytest.raises(FtCoreError, match=r"needs a CUDA GPU.*no CUDA GPU is present"):
        ft_core_sglang.check_backend(ft_core_sglang.SglangEngineOptions())


# ---------------------------------------------------------------------------------------------- the fake backend
@dataclass
class FakeBackend:
    """Records the engine's arguments and every ``generate`` call; replies ``replies`` in order."""

    replies: list[tuple[str, str]] = field(default_factory=list)  # (text, finish reason type)
    engine_args: dict[str, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    used: int = 0

    def _output(self, prompt: list[int], text: str, reason: str | None, tokens: int) -> dict[str, Any]:
        finish = None if reason is None else {"type": reason}
        meta = {"prompt_tokens": len(prompt), "completion_tokens": tokens, "finish_reason": finish}
        return {"text": text, "meta_info": meta}

    def module(self) -> types.ModuleType:
        backend = self
        sglang = types.ModuleType("sglang")

        class Engine:
            def __init__(self, **kwargs: Any) -> None:
                backend.engine_args = kwargs

            def generate(
                self,
                input_ids: Any = None,
                sampling_params: Any = None,
                lora_path: Any = None,
                stream: bool = False,
            ) -> Any:
                backend.calls.append(
                    {
                        "input_ids": input_ids,
                        "sampling_params": sampling_params,
                        "lora_path": lora_path,
                        "stream": stream,
                    }
                )
                if stream:
                    text, reason = backend.replies[backend.used]
                    backend.used += 1

                    def chunks() -> Any:
                        for size in range(2, len(text), 3):  # cumulative text, a few characters at a time
                            yield backend._output(input_ids, text[:size], None, size)
                        yield backend._output(input_ids, text, reason, len(text))

                    return chunks()
                outputs = []
                for prompt in input_ids:
                    text, reason = backend.replies[backend.used]
                    backend.used += 1
                    outputs.append(backend._output(prompt, text, reason, len(text)))
                return outputs

            def shutdown(self) -> None:
                pass

        sglang.Engine = Engine  # type: ignore[attr-defined]
        return sglang


@pytest.fixture
def backend(monkeypatch) -> FakeBackend:
    fake = FakeBackend()
    monkeypatch.setitem(sys.modules, "sglang", fake.module())
    monkeypatch.setattr(ft_core_sglang, "cuda_device_count", lambda: 1)
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
    options = ft_core_sglang.SglangEngineOptions(max_model_len=2048, gpu_memory_utilization=0.5)
    return ft_core_sglang.SglangEngine().load(chat_target, options)


def test_serves_the_base_with_the_adapter(backend, run_folder):
    backend.replies = [("Hi there!", "stop")]
    model = _load(run_folder)
    response = model.complete(ChatRequest([{"role": "user", "content": "Hello"}]))
    args = backend.engine_args
    assert args["model_path"] == "/models/base" and args["tokenizer_path"] == str(run_folder)
    assert args["lora_paths"] == [f"ft-core-adapter={run_folder}"]
    assert (args["context_length"], args["mem_fraction_static"], args["tp_size"]) == (2048, 0.5, 1)
    assert backend.calls[0]["lora_path"] == "ft-core-adapter" and backend.calls[0]["stream"] is True
    assert response.text == "Hi there!" and response.finish_reason == "stop"


def test_batched_prompts_stops_sampling_and_usage(backend, run_folder, tokenizer):
    backend.replies = [("Sure.", "stop"), ("a b c d", "length")]
    model = _load(run_folder, stop_words=["<|im_end|>", "###"], template_kwargs={"enable_thinking": False})
    messages = [{"role": "user", "content": "Hello"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    sampled = SamplingOptions(temperature=0.7, top_p=0.9, max_new_tokens=7, seed=3, stop=("END",))
    responses = model.generate([ChatRequest(messages, tools=tools), ChatRequest(messages, sampling=sampled)])
    expected = tokenizer.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        enable_thinking=False,
    )["input_ids"]
    assert len(backend.calls) == 1  # one batched call
    call = backend.calls[0]
    assert call["input_ids"][0] == list(expected) and call["lora_path"] == ["ft-core-adapter"] * 2
    greedy, sampling = call["sampling_params"]
    assert greedy["temperature"] == 0 and greedy["top_p"] == 1.0 and "sampling_seed" not in greedy
    assert greedy["stop"] == ["<|im_end|>", "###"] and greedy["stop_token_ids"] == [2]
    assert greedy["skip_special_tokens"] is True
    assert (
        sampling["temperature"],
        sampling["top_p"],
        sampling["max_new_tokens"],
        sampling["sampling_seed"],
    ) == (
        0.7,
        0.9,
        7,
        3,
    )
    assert sampling["stop"] == ["<|im_end|>", "###", "END"]
    assert [(r.text, r.finish_reason) for r in responses] == [("Sure.", "stop"), ("a b c d", "length")]
    assert responses[0].usage.prompt_tokens == len(expected) and responses[0].usage.completion_tokens == 5


def test_a_stop_string_in_the_text_is_cut(backend, run_folder):
    backend.replies = [("Hello ### more text after", "length"), ("Bye ### rest", "length")]
    model = _load(run_folder, stop_words=["###"])
    deltas = list(model.stream(ChatRequest([{"role": "user", "content": "hi"}])))
    assert "".join(d.text for d in deltas) == "Hello " and all("#" not in d.text for d in deltas)
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None and len(deltas) > 2
    [response] = model.generate([ChatRequest([{"role": "user", "content": "hi"}])])
    assert (response.text, response.finish_reason) == ("Bye ", "stop")


def test_stream_batch_answers_every_request(backend, run_folder):
    backend.replies = [("first answer", "stop"), ("second answer", "length")]
    model = _load(run_folder)
    pairs = list(model.stream_batch([ChatRequest([{"role": "user", "content": q}]) for q in ("a", "b")]))
    assert [(i, d.text, d.finish_reason) for i, d in pairs] == [
        (0, "first answer", "stop"),
        (1, "second answer", "length"),
    ]
    assert len(backend.calls) == 1


def test_tool_calls_come_back_for_the_templates_parser(backend, run_folder):
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    backend.replies = [(call, "stop")]
    model = _load(run_folder, template="qwen")
    response = model.complete(ChatRequest([{"role": "user", "content": "weather?"}]))
    content, calls = hermes(response.text)
    assert content == "" and calls[0]["function"]["name"] == "get_weather"
    assert calls[0]["function"]["arguments"] == {"city": "Paris"}


def test_images_are_refused(backend, run_folder):
    model = _load(run_folder)
    assert model.accepts_images is False
    with pytest.raises(FtCoreError, match="text only"):
        model.complete(ChatRequest([{"role": "user", "content": "<image>what?"}], images=[b"png"]))


def test_a_plain_model_is_served_without_lora(backend, tokenizer_folder):
    backend.replies = [("ok", "stop")]
    target = ChatTarget("m", tokenizer_folder, load_model=lambda dtype: None)
    model = ft_core_sglang.SglangEngine().load(target, ft_core_sglang.SglangEngineOptions())
    model.complete(ChatRequest([{"role": "user", "content": "hi"}]))
    assert backend.engine_args["model_path"] == tokenizer_folder and "lora_paths" not in backend.engine_args
    assert backend.calls[0]["lora_path"] is None


@pytest.mark.gpu
def test_real_generation_on_a_gpu(tokenizer_folder):
    pytest.importorskip("sglang")
    if ft_core_sglang.cuda_device_count() < 1:
        pytest.skip("no CUDA GPU")
    target = ChatTarget("embedded", tokenizer_folder, load_model=lambda dtype: None)
    options = ft_core_sglang.SglangEngineOptions(gpu_memory_utilization=0.3)
    model = ft_core_sglang.SglangEngine().load(target, options)
    try:
        request = ChatRequest(
            [{"role": "user", "content": "Say hi"}], sampling=SamplingOptions(max_new_tokens=8)
        )
        response = model.complete(request)
    finally:
        model.close()
    assert response.usage.completion_tokens >= 1
