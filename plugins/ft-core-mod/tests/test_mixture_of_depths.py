import json

import pytest
import torch

import ft_core_mod
from ft_core.api import FtCoreError, OptionsError
from ft_core.testing import run_config
from ft_core.testing.import_light import check_import_light
from ft_core.testing.tiny import tiny_model
from ft_core_mod import MixtureOfDepthsOptions, MixtureOfDepthsPatch
from ft_core_mod.routing import routed_indices


def _batch(tokenizer):
    torch.manual_seed(3)
    ids = torch.randint(3, len(tokenizer), (2, 12))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    return ids, mask


def _converted(tokenizer, **options):
    model = tiny_model(tokenizer, num_hidden_layers=4, attn_implementation="sdpa")
    return MixtureOfDepthsPatch().patch_model(model, MixtureOfDepthsOptions(**options))


def test_registers_the_patch(make_plugins):
    plugins = make_plugins(ft_core_mod)
    assert isinstance(plugins.get("model_patch", "mixture_of_depths"), MixtureOfDepthsPatch)


def test_import_light():
    check_import_light("ft_core_mod")


def test_every_other_layer_routes():
    assert routed_indices(6, 2) == [1, 3, 5]
    assert routed_indices(6, 3) == [2, 5]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"capacity": 0}, "capacity must be in"),
        ({"every": 0}, "every must be >= 1"),
        ({"mode": "load", "capacity": 0.5}, "mode: load takes them from the converted model"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        MixtureOfDepthsOptions(**values)


def test_capacity_one_equals_the_original_model(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, num_hidden_layers=4, attn_implementation="sdpa").train()
    ids, mask = _batch(tiny_tokenizer)
    reference = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    MixtureOfDepthsPatch().patch_model(model, MixtureOfDepthsOptions(capacity=1.0))
    assert isinstance(model.model.layers[1].mod_router, torch.nn.Linear)
    assert not hasattr(model.model.layers[0], "mod_router")
    routed = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    real = mask.bool()
    torch.testing.assert_close(routed[real], reference[real], atol=1e-5, rtol=1e-5)


def test_low_capacity_skips_tokens_and_the_router_learns(tiny_tokenizer):
    model = _converted(tiny_tokenizer, capacity=0.25).train()
    ids, mask = _batch(tiny_tokenizer)
    layer = model.model.layers[1]
    seen = []
    hook = layer.self_attn.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["hidden_states"].shape), with_kwargs=True
    )
    loss = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False).loss
    hook.remove()
    assert seen == [torch.Size([2, 3, 32])]  # 25 % of 12 tokens per row
    loss.backward()
    assert layer.mod_router.weight.grad.abs().sum() > 0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()
    assert layer.mod_router.weight.abs().sum() > 0


def test_eval_mode_runs_every_token_and_generates(tiny_tokenizer):
    model = _converted(tiny_tokenizer).eval()
    ids, _ = _batch(tiny_tokenizer)
    assert model.generate(ids[:, :4], max_new_tokens=3, do_sample=False).shape == (2, 7)


def test_save_and_load_roundtrip(tiny_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    model = _converted(tiny_tokenizer, capacity=0.5)
    with torch.no_grad():
        for layer in (model.model.layers[1], model.model.layers[3]):
            layer.mod_router.weight.normal_()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["mixture_of_depths"] == {
        "capacity": 0.5,
        "every": 2,
        "layers": [1, 3],
    }
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa")
    MixtureOfDepthsPatch().patch_model(loaded, MixtureOfDepthsOptions(mode="load"))
    ids, mask = _batch(tiny_tokenizer)
    for mode in ("train", "eval"):
        getattr(model, mode)(), getattr(loaded, mode)()
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask, use_cache=False).logits,
            model(input_ids=ids, attention_mask=mask, use_cache=False).logits,
        )


def test_load_of_a_plain_model_is_an_error(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer)
    with pytest.raises(FtCoreError, match="is not a converted model"):
        MixtureOfDepthsPatch().patch_model(model, MixtureOfDepthsOptions(mode="load"))


def test_validate_refuses_lora_packing_and_load_of_a_plain_model(make_config, capsys):
    from ft_core.cli import main

    path = make_config(patches=[{"name": "mixture_of_depths", "mode": "load"}], data={"packing": True})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "adapter.method: lora cannot train or save them: use adapter.method: full" in err
    assert "data.packing: true cannot be combined with Mixture-of-Depths" in err
    assert "mode: load needs a converted model" in err


def test_convert_train_save_then_load_and_train_again(make_config, tmp_path):
    from safetensors.torch import load_file

    first = make_config(
        "convert.yaml",
        adapter={"method": "full"},
        patches=[{"name": "mixture_of_depths", "capacity": 0.5}],
        training={"output_dir": str(tmp_path / "convert"), "max_steps": 1},
    )
    converted = run_config(first, ft_core_mod) / "model"
    routers = {k: v for k, v in load_file(str(converted / "model.safetensors")).items() if "mod_router" in k}
    assert sorted(routers) == ["model.layers.1.mod_router.bias", "model.layers.1.mod_router.weight"]
    second = make_config(
        "load.yaml",
        model={"name_or_path": str(converted)},
        adapter={"method": "full"},
        patches=[{"name": "mixture_of_depths", "mode": "load"}],
        training={"output_dir": str(tmp_path / "load"), "max_steps": 1},
    )
    results = json.loads((run_config(second, ft_core_mod) / "train_results.json").read_text())
    assert results["train_loss"] > 0
