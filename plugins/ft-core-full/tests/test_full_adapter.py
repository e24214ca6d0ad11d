import torch

import ft_core_full
from ft_core.api import NoOptions
from ft_core.testing.conformance_adapters import check_adapter
from ft_core.testing.import_light import check_import_light


def test_full_registers_through_the_hook(make_plugins):
    plugins = make_plugins(ft_core_full)
    adapter = plugins.get("adapter", "full")
    assert isinstance(adapter, ft_core_full.FullAdapter)
    assert adapter.saves_full_model
    assert adapter.options_schema is NoOptions


def test_full_conformance(tiny_model, tmp_path):
    check_adapter(ft_core_full.FullAdapter(), NoOptions(), tiny_model, tmp_path, all_trainable=True)


def test_full_trains_in_fp32(tiny_model):
    tiny_model.requires_grad_(False)
    model = ft_core_full.FullAdapter().apply(tiny_model.to(torch.bfloat16), NoOptions(), None)
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())


def test_full_registration_is_import_light():
    check_import_light("ft_core_full")
