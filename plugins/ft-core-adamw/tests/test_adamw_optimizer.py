"""The adamw optimizer: registration, options and what it builds."""

import torch

import ft_core_adamw


def test_registers_adamw(make_plugins):
    assert make_plugins(ft_core_adamw).get("optimizer", "adamw").options_schema is ft_core_adamw.AdamWOptions


def test_builds_torch_adamw_with_the_options():
    cls, kwargs = ft_core_adamw.AdamW().cls_and_kwargs(
        ft_core_adamw.AdamWOptions(betas=[0.9, 0.95], eps=1e-6), 3e-4
    )
    optimizer = cls([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert group["lr"] == 3e-4 and group["betas"] == (0.9, 0.95) and group["eps"] == 1e-6


def test_bad_betas_are_a_config_problem():
    from ft_core.config.typecheck import build

    problems: list[str] = []
    build(ft_core_adamw.AdamWOptions, {"betas": [0.9]}, "optimizer", problems)
    assert problems == ["optimizer: betas: expected two numbers in [0, 1), got [0.9]"]
