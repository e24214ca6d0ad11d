import pytest
import torch

import ft_core_freeze
from ft_core.api import FtCoreError, ModelFamily, OptionsError
from ft_core.testing.conformance_adapters import check_adapter
from ft_core.testing.import_light import check_import_light
from ft_core.testing.tiny import tiny_model as make_tiny_model
from ft_core_freeze.adapter import FreezeAdapter, FreezeOptions


@pytest.fixture
def four_layer_model(tiny_tokenizer):
    return make_tiny_model(tiny_tokenizer, num_hidden_layers=4)


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_registers_through_the_hook(make_plugins):
    plugins = make_plugins(ft_core_freeze)
    assert isinstance(plugins.get("adapter", "freeze"), FreezeAdapter)
    assert FreezeAdapter.saves_full_model


def test_freeze_conformance(tiny_model, tmp_path):
    check_adapter(FreezeAdapter(), FreezeOptions(trainable_layers=1), tiny_model, tmp_path)


def test_freeze_trains_the_last_layers(four_layer_model):
    model = FreezeAdapter().apply(four_layer_model, FreezeOptions(trainable_layers=2), None)
    layers = {n.split(".")[2] for n in _trainable(model)}
    assert layers == {"2", "3"}
    assert all(n.startswith("model.layers.") for n in _trainable(model))


def test_freeze_negative_trains_the_first_layers_and_chosen_modules(four_layer_model):
    family = ModelFamily(model_types=("llama",), decoder_layers="model.layers")
    options = FreezeOptions(
        trainable_layers=-1, trainable_modules=["mlp"], extra_modules=["embed_tokens", "norm"]
    )
    model = FreezeAdapter().apply(four_layer_model, options, family)
    assert _trainable(model) == {
        "model.embed_tokens.weight",
        "model.norm.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
    }


def test_freeze_too_many_layers_is_a_clear_error(four_layer_model):
    with pytest.raises(FtCoreError, match="more layers than the model's 4 decoder layers"):
        FreezeAdapter().apply(four_layer_model, FreezeOptions(trainable_layers=5), None)


def test_freeze_unknown_module_lists_choices(four_layer_model):
    with pytest.raises(FtCoreError, match=r"'attention' not found\. Available: .*self_attn.*mlp"):
        FreezeAdapter().apply(four_layer_model, FreezeOptions(trainable_modules=["attention"]), None)
    with pytest.raises(FtCoreError, match=r"'embeddings' not found\. Available: .*embed_tokens"):
        FreezeAdapter().apply(four_layer_model, FreezeOptions(extra_modules=["embeddings"]), None)


def test_freeze_upcasts_trainable_parameters(four_layer_model):
    model = FreezeAdapter().apply(four_layer_model.to(torch.float16), FreezeOptions(trainable_layers=1), None)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.float16


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"trainable_layers": 0}, "nothing would train"),
        ({"trainable_modules": []}, "trainable_modules must list sub-module names"),
    ],
)
def test_freeze_bad_options_raise_options_error(values, message):
    with pytest.raises(OptionsError, match=message):
        FreezeOptions(**values)
    assert FreezeOptions(trainable_layers=0, extra_modules=["norm"]).extra_modules == ["norm"]


def test_freeze_registration_is_import_light():
    check_import_light("ft_core_freeze")
