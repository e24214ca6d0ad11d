import json

import pytest
import torch

import ft_core_llama_pro
from ft_core.api import FtCoreError, OptionsError
from ft_core.testing import run_config
from ft_core.testing.import_light import check_import_light
from ft_core.testing.tiny import tiny_model
from ft_core_llama_pro import LlamaProAdapter, LlamaProOptions
from ft_core_llama_pro.expand import expansion_positions


@pytest.fixture
def four_layers(tiny_tokenizer):
    return tiny_model(tiny_tokenizer, num_hidden_layers=4)


def _ids(tokenizer):
    torch.manual_seed(2)
    return torch.randint(3, len(tokenizer), (2, 9))


def test_registers_the_adapter(make_plugins):
    plugins = make_plugins(ft_core_llama_pro)
    assert isinstance(plugins.get("adapter", "llama_pro"), LlamaProAdapter)
    assert LlamaProAdapter.saves_full_model


def test_import_light():
    check_import_light("ft_core_llama_pro")


def test_positions_follow_llama_factory():
    assert expansion_positions(32, 8, []) == [3, 7, 11, 15, 19, 23, 27, 31]
    assert expansion_positions(4, None, [2, 0, 2]) == [0, 2]
    with pytest.raises(
        FtCoreError, match=r"num_expand: 3 does not divide the model's 4 decoder layers.*\[1, 2, 4\]"
    ):
        expansion_positions(4, 3, [])
    with pytest.raises(FtCoreError, match=r"expand_layers: \[4\] outside the model's 4 decoder layers"):
        expansion_positions(4, None, [4])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "set exactly one of num_expand"),
        ({"num_expand": 2, "expand_layers": [1]}, "set exactly one of num_expand"),
        ({"num_expand": 0}, "num_expand must be >= 1"),
        ({"num_expand": 1, "modules_to_save": ["lm_head"]}, "modules_to_save applies with use_lora"),
        ({"num_expand": 1, "rank": 0}, "rank must be >= 1"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        LlamaProOptions(**values)


@pytest.mark.parametrize("use_lora", [False, True])
def test_expanded_model_equals_the_original_and_only_new_blocks_learn(four_layers, tiny_tokenizer, use_lora):
    ids = _ids(tiny_tokenizer)
    reference = four_layers(input_ids=ids).logits
    before = {n: p.detach().clone() for n, p in four_layers.named_parameters()}
    options = LlamaProOptions(num_expand=2, use_lora=use_lora, rank=4)
    model = LlamaProAdapter().apply(four_layers, options, None)
    assert four_layers.config.num_hidden_layers == 6
    assert [layer.self_attn.layer_idx for layer in four_layers.model.layers] == list(range(6))
    torch.testing.assert_close(model(input_ids=ids).logits, reference, atol=0, rtol=0)

    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    new = {"2", "5"}  # after the last block of each half: old 1 -> new 2, old 3 -> new 5
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all(n.split("layers.")[1].split(".")[0] in new for n in with_grad)
    if use_lora:
        model = model.merge_and_unload()
    after = dict(model.named_parameters())
    old_names = {
        f"model.layers.{old}.": f"model.layers.{new_}." for old, new_ in ((0, 0), (1, 1), (2, 3), (3, 4))
    }
    for name, value in before.items():
        moved = name
        for old, new_ in old_names.items():
            if name.startswith(old):
                moved = name.replace(old, new_)
        torch.testing.assert_close(after[moved], value, atol=0, rtol=0)
    changed = [n for n in ("model.layers.2.mlp.down_proj.weight", "model.layers.5.self_attn.o_proj.weight")]
    assert all(after[n].abs().sum() > 0 for n in changed)


def test_a_block_without_output_projections_is_a_clear_error(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, model_type="starcoder2")
    with pytest.raises(FtCoreError, match=r"zeroing its o_proj and down_proj.*has no .*down_proj"):
        LlamaProAdapter().apply(model, LlamaProOptions(num_expand=1), None)


@pytest.mark.parametrize("use_lora", [False, True])
def test_a_run_saves_an_expanded_model_that_loads_and_chats(make_config, capsys, use_lora):
    from transformers import AutoModelForCausalLM

    from ft_core.cli import main

    adapter = {"method": "llama_pro", "num_expand": 1, "use_lora": use_lora, "rank": 4}
    run_dir = run_config(make_config(adapter=adapter), ft_core_llama_pro)
    artefact = run_dir / "model"
    assert json.loads((artefact / "config.json").read_text())["num_hidden_layers"] == 3
    model = AutoModelForCausalLM.from_pretrained(artefact)
    assert len(model.model.layers) == 3
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.model.layers[2].mlp.down_proj.weight.abs().sum() > 0  # the new block trained
    assert main(["chat", str(run_dir), "-m", "hi", "--max-new-tokens", "3"]) == 0
