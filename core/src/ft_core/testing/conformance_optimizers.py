"""Conformance check for optimizer factories (``ft_register_optimizers``).

Use it from a plugin's tests::

    from ft_core.testing.conformance_optimizers import check_optimizer

    def test_conformance(tiny_model):
        check_optimizer(MyOptimizer(), MyOptions(), tiny_model)
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ft_core.api.components import OptimizerFactory
from ft_core.api.modeling import default_param_groups


def check_optimizer(
    factory: OptimizerFactory[Any],
    options: Any,
    model: Any,
    *,
    learning_rate: float = 1e-2,
    weight_decay: float = 0.0,
) -> Any:
    """Check an optimizer factory on a model whose trainable parameters are set; returns the optimizer.

    1. ``param_groups`` returns ``None`` or groups whose parameters are exactly the trainable ones, each once.
    2. ``create`` builds a ``torch.optim.Optimizer`` over those parameters with a positive learning rate in every
       group (the base ``args.learning_rate`` where a group sets none).
    3. One step on a language-modelling loss changes trainable parameters and no frozen one.
    """
    import torch

    assert isinstance(factory, OptimizerFactory), f"{type(factory).__name__} must subclass OptimizerFactory"
    args = SimpleNamespace(learning_rate=learning_rate, weight_decay=weight_decay)
    defaults = default_param_groups(model, weight_decay)
    groups = factory.param_groups(options, model, defaults, args) or defaults
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for group in groups for p in group["params"]]
    assert len(grouped) == len(set(grouped)), "a parameter is in several groups"
    assert set(grouped) == trainable, (
        f"the groups hold {len(set(grouped) - trainable)} frozen and miss {len(trainable - set(grouped))} "
        "trainable parameters"
    )
    optimizer = factory.create(options, [g for g in groups if g["params"]], args)
    assert isinstance(optimizer, torch.optim.Optimizer), f"create returned {type(optimizer).__name__}"
    assert all(group["lr"] > 0 for group in optimizer.param_groups), "a group has no positive learning rate"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    input_ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    model.train()
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert changed, "one optimizer step changed no parameter"
    assert not changed & frozen, f"frozen parameters changed: {sorted(changed & frozen)[:5]}"
    return optimizer
