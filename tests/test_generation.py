"""The ``generation`` section: validated with the config, stored with the run, used by chat (and serve / predict,
whose plugins test their own use), flags override it; the hf engine honours every setting (beam search too)."""

from __future__ import annotations

import argparse

import pytest

from ft_core.api.errors import ConfigError
from ft_core.api.inference import (
    ChatRequest,
    ChatTarget,
    SamplingOptions,
    add_generation_flags,
    generation_flags,
)
from ft_core.bootstrap import load_plugins
from ft_core.engine.config.loader import load_config
from ft_core.engine.config.validate import validate
from ft_core.engine.inference.hf import HfEngine, HfEngineOptions
from ft_core.engine.inference.target import resolve_chat_target
from ft_core.engine.run.runner import load_and_validate, run_training
from ft_core.testing.tiny import save_tiny_model_dir

HI = [{"role": "user", "content": "hi"}]


def test_section_is_validated_with_the_config(make_config) -> None:
    plugins = load_plugins()
    path = make_config(generation={"top_p": 1.5, "num_beam": 2})
    raw, sources = load_config(path)
    with pytest.raises(ConfigError) as caught:
        validate(raw, plugins, sources, str(path))
    text = str(caught.value)
    assert "generation.num_beam: unknown key. Did you mean 'num_beams'?" in text
    path = make_config(generation={"top_p": 1.5})
    raw, sources = load_config(path)
    with pytest.raises(ConfigError, match=r"generation: top_p must be in \(0, 1\], got 1.5"):
        validate(raw, plugins, sources, str(path))


def test_flags_override_the_run_section_which_overrides_the_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_generation_flags(parser, "reply")
    args = parser.parse_args(["--top-k", "5", "--no-do-sample", "--stop", "END"])
    run = {"temperature": 0.7, "top_k": 40, "max_new_tokens": 12, "stop": ["###"]}
    sampling = SamplingOptions.from_settings(run, generation_flags(args), {"stop": ["<|im_end|>"]})
    assert (sampling.temperature, sampling.top_k, sampling.max_new_tokens) == (0.7, 5, 12)
    assert sampling.do_sample is False and not sampling.samples
    assert sampling.stop == ("###", "END", "<|im_end|>")
    assert SamplingOptions.from_settings({}, generation_flags(parser.parse_args([]))) == SamplingOptions()
    with pytest.raises(ValueError, match="num_beams must be >= 1"):
        SamplingOptions.from_settings({"num_beams": 0})


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory: pytest.TempPathFactory):
    path = save_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-generation")))

    def load_model(dtype):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    target = ChatTarget(description="tiny", tokenizer_path=path, load_model=load_model)
    return HfEngine().load(target, HfEngineOptions(device="cpu"))


def test_hf_engine_runs_beam_search_and_penalties_as_transformers_does(tiny_chat) -> None:
    import torch

    sampling = SamplingOptions(max_new_tokens=6, num_beams=3, repetition_penalty=1.3, length_penalty=0.5)
    request = ChatRequest(HI, sampling=sampling)
    streamed = "".join(delta.text for delta in tiny_chat.stream(request))
    batched = tiny_chat.generate([request])[0].text
    prompt = tiny_chat.tokenizer.apply_chat_template(
        HI, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = torch.tensor([list(prompt["input_ids"])])
    expected_ids = tiny_chat.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=6,
        num_beams=3,
        repetition_penalty=1.3,
        length_penalty=0.5,
        do_sample=False,
        pad_token_id=tiny_chat.pad_id,
        eos_token_id=tiny_chat.stop_ids,
    )
    expected = tiny_chat.tokenizer.decode(expected_ids[0, ids.shape[1] :], skip_special_tokens=True)
    assert streamed.strip() == batched.strip() == expected.strip()
    greedy = tiny_chat.generate([ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=6))])[0].text
    assert isinstance(greedy, str)


def test_a_run_stores_its_generation_section_and_chat_uses_it(make_config, capsys) -> None:
    from ft_core.cli import main

    plugins = load_plugins()
    path = make_config(generation={"max_new_tokens": 3, "repetition_penalty": 1.2})
    run = run_training(load_and_validate(str(path), [], plugins), plugins)
    target = resolve_chat_target(str(run), plugins)
    assert target.generation == {"max_new_tokens": 3, "repetition_penalty": 1.2}
    assert main(["chat", str(run), "-m", "hi", "-v"]) == 0
    assert "+ 3 completion tokens" in capsys.readouterr().err
    assert main(["chat", str(run), "-m", "hi", "-v", "--max-new-tokens", "2"]) == 0
    assert "+ 2 completion tokens" in capsys.readouterr().err
