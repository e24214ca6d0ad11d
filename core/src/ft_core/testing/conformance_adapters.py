"""Conformance check for adapter methods (``ft_register_adapters``).

Use it from a plugin's tests::

    from ft_core.testing.conformance_adapters import check_adapter

    def test_conformance(tiny_model, tmp_path):
        check_adapter(MyAdapter(), MyOptions(), tiny_model, tmp_path)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ft_core.api.components import AdapterMethod
from ft_core.api.descriptors import ModelFamily


def _snapshot(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def check_adapter(
    adapter: AdapterMethod,
    options: Any,
    tiny_model: Any,
    tmp_path: str | Path,
    *,
    family: ModelFamily | None = None,
    all_trainable: bool = False,
) -> Any:
    """Check an adapter method end to end on a tiny model; returns the model it trained.

    1. ``apply`` leaves some parameters trainable and, unless ``all_trainable``, some frozen; trainable
       parameters are fp32 or the model's own dtype.
    2. One optimizer step on a language-modelling loss changes trainable parameters and no frozen one, and
       changes the model's output.
    3. ``save`` writes the declared artefact (whole model iff ``saves_full_model``), and
       ``load_for_inference`` returns a model whose logits equal the trained model's.
    """
    import torch

    assert isinstance(adapter, AdapterMethod), f"{type(adapter).__name__} must subclass AdapterMethod"
    base = copy.deepcopy(tiny_model)
    model = adapter.apply(tiny_model, options, family)
    named = dict(model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    frozen = set(named) - trainable
    assert trainable, f"{type(adapter).__name__}.apply left no trainable parameter"
    if all_trainable:
        assert not frozen, f"expected every parameter to train, frozen: {sorted(frozen)[:5]}"
    else:
        assert frozen, "expected some parameters to stay frozen, but every parameter trains"

    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (2, 12), generator=generator)
    model.eval()
    with torch.no_grad():
        logits_before = model(input_ids=input_ids).logits.float()

    before = _snapshot(model)
    model.train()
    optimizer = torch.optim.SGD([named[n] for n in sorted(trainable)], lr=0.5)
    loss = model(input_ids=input_ids, labels=input_ids).loss
    assert torch.isfinite(loss), f"training loss is not finite: {loss}"
    loss.backward()
    for name in frozen:
        assert named[name].grad is None, f"frozen parameter {name} received a gradient"
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, "one optimizer step changed no parameter"
    assert changed <= trainable, f"frozen parameters changed: {sorted(changed - trainable)[:5]}"

    model.eval()
    with torch.no_grad():
        logits_after = model(input_ids=input_ids).logits.float()
    assert not torch.allclose(logits_before, logits_after), (
        "training the trainable parameters changed no output"
    )

    output_dir = Path(tmp_path) / "artefact"
    adapter.save(model, str(output_dir))
    assert output_dir.is_dir() and any(output_dir.iterdir()), "save wrote nothing"
    has_config = (output_dir / "config.json").is_file()
    assert has_config == adapter.saves_full_model, (
        f"saves_full_model is {adapter.saves_full_model} but config.json is {'' if has_config else 'not '}saved"
    )
    loaded = adapter.load_for_inference(str(output_dir), lambda: copy.deepcopy(base))
    loaded.eval()
    with torch.no_grad():
        logits_loaded = loaded(input_ids=input_ids).logits.float()
    assert torch.allclose(logits_after, logits_loaded, atol=1e-4, rtol=1e-4), (
        f"reloaded model differs: max |diff| = {(logits_after - logits_loaded).abs().max().item():.3g}"
    )
    return model
