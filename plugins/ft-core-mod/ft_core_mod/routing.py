"""Mixture-of-Depths routing (Raposo et al. 2024) on transformers' own decoder layers.

A routed decoder layer gets a router (``mod_router``, a linear map of the hidden state to one score per token) and a
subclass of its own class whose forward, while training, runs the layer on the ``capacity x L`` tokens of each row
with the highest scores (kept in their order, with their positions, rotary embeddings and attention mask) and lets
the other tokens pass unchanged. A processed token's update is weighted by its gate ``2 sigmoid(score)``, which
carries the router's gradient: ``x + gate * (layer(x) - x)``. The router starts at zero (gate 1), so a freshly
converted model with ``capacity: 1`` computes exactly what the original did. In eval mode every token runs through
the layer, weighted by its gate (tokens the router ranks low get a small update), so generation with a KV cache works.

Only the class of each layer changes (it stays an instance of the original class) and the router is one extra
parameter per routed layer: the state dict keeps the original keys, and ``config.mixture_of_depths`` records the
routing so that a saved model can be converted again and get its routers back (:func:`load_routers`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ft_core.api import FtCoreError, decoder_layers

#: Name of a routed layer's router module.
ROUTER = "mod_router"
#: Attribute of the model config recording the routing (saved in ``config.json``).
CONFIG_KEY = "mixture_of_depths"


def _gather_rows(tensor: torch.Tensor | None, index: torch.Tensor, batch: int) -> torch.Tensor | None:
    """``tensor`` ``(B or 1, L, ...)`` at the sequence positions ``index`` ``(B, k)``."""
    if tensor is None:
        return None
    tensor = tensor.expand(batch, *tensor.shape[1:])
    shape = (*index.shape, *tensor.shape[2:])
    return tensor.gather(1, index.view(*index.shape, *([1] * (tensor.dim() - 2))).expand(shape))


def _gather_mask(mask: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    """The attention mask among the selected tokens: rows and columns ``index`` of a 4D mask (every token may
    attend to itself, so a selected padding token never has an empty row); a 2D padding mask's columns."""
    if mask is None:
        return None
    batch, count = index.shape
    if mask.dim() == 2:
        return mask.gather(1, index)
    mask = mask.expand(batch, mask.shape[1], mask.shape[2], mask.shape[3])
    heads = mask.shape[1]
    rows = mask.gather(2, index[:, None, :, None].expand(batch, heads, count, mask.shape[3]))
    picked = rows.gather(3, index[:, None, None, :].expand(batch, heads, count, count))
    eye = torch.eye(count, dtype=torch.bool, device=mask.device)
    if picked.dtype == torch.bool:
        return picked | eye
    return picked.masked_fill(eye, 0.0)


def routed_forward(layer: Any, original: Any, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """The forward of a routed layer (see the module docstring); ``original`` is its class's own forward."""
    if args:
        raise FtCoreError("mixture_of_depths: a routed decoder layer takes its inputs as keyword arguments")
    router: nn.Linear = getattr(layer, ROUTER)
    scores = router(hidden_states.to(router.weight.dtype)).squeeze(-1)
    if not layer.training:
        output = original(layer, hidden_states, **kwargs)
        output = output[0] if isinstance(output, tuple) else output
        gate = (2 * torch.sigmoid(scores)).unsqueeze(-1).to(hidden_states.dtype)
        return hidden_states + gate * (output - hidden_states)
    batch, length, _ = hidden_states.shape
    count = max(1, int(layer._ft_core_mod_capacity * length))
    index = scores.topk(count, dim=1).indices.sort(dim=1).values
    selected = _gather_rows(hidden_states, index, batch)
    assert selected is not None
    embeddings = kwargs.get("position_embeddings")
    if embeddings is not None:
        kwargs["position_embeddings"] = tuple(_gather_rows(part, index, batch) for part in embeddings)
    if kwargs.get("position_ids") is not None:
        kwargs["position_ids"] = _gather_rows(kwargs["position_ids"], index, batch)
    kwargs["attention_mask"] = _gather_mask(kwargs.get("attention_mask"), index)
    kwargs["cache"] = None
    kwargs["use_cache"] = False
    output = original(layer, selected, **kwargs)
    output = output[0] if isinstance(output, tuple) else output
    gate = (2 * torch.sigmoid(scores.gather(1, index))).unsqueeze(-1).to(selected.dtype)
    updated = selected + gate * (output - selected)
    return hidden_states.scatter(1, index.unsqueeze(-1).expand_as(updated), updated)


def _routed_class(layer_class: type[nn.Module]) -> type:
    """A subclass of ``layer_class`` with :func:`routed_forward`, registered in this module as ``MoD<name>`` (so
    that a pickled model finds it)."""
    name = f"MoD{layer_class.__name__}"
    existing = globals().get(name)
    if isinstance(existing, type) and issubclass(existing, layer_class):
        return existing
    original = layer_class.forward

    def forward(self: Any, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return routed_forward(self, original, hidden_states, *args, **kwargs)

    routed = type(name, (layer_class,), {"forward": forward, "__module__": __name__, "__qualname__": name})
    globals()[name] = routed
    return routed


def routed_indices(layer_count: int, every: int) -> list[int]:
    """The layers that route: every ``every``-th, never the first (1, 3, 5, ... for ``every: 2``)."""
    return [index for index in range(layer_count) if index % every == every - 1]


def convert(model: Any, capacity: float, every: int) -> list[int]:
    """Make every ``every``-th decoder layer of ``model`` a routed layer with a zero-initialised router (in place)
    and record the routing in ``model.config``; returns the routed layer indices."""
    layers = decoder_layers(model, None)
    if any(hasattr(layer, ROUTER) for layer in layers):
        raise FtCoreError("mixture_of_depths: the model is converted already")
    indices = routed_indices(len(layers), every)
    if not indices:
        raise FtCoreError(
            f"mixture_of_depths: every: {every} routes none of the model's {len(layers)} decoder layers; use a "
            f"smaller value (2 routes every other layer)"
        )
    hidden = model.config.get_text_config().hidden_size
    for index in indices:
        layer = layers[index]
        reference = next(layer.parameters())
        router = nn.Linear(hidden, 1, device=reference.device, dtype=reference.dtype)
        nn.init.zeros_(router.weight)
        nn.init.zeros_(router.bias)
        layer.add_module(ROUTER, router)
        layer._ft_core_mod_capacity = capacity
        layer.__class__ = _routed_class(type(layer))
    setattr(model.config, CONFIG_KEY, {"capacity": capacity, "every": every, "layers": indices})
    return indices


def recorded_routing(folder: str) -> dict[str, Any] | None:
    """``mixture_of_depths`` of ``config.json`` in ``folder`` (a converted model), ``None`` when absent."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    routing = config.get(CONFIG_KEY) if isinstance(config, dict) else None
    return routing if isinstance(routing, dict) else None


def load_routers(model: Any, folder: str) -> int:
    """Copy the routers' weights from the ``*.safetensors`` files of ``folder`` into ``model`` (converted the same
    way); returns how many tensors were loaded. A router missing from the files is an error."""
    from safetensors import safe_open

    wanted = {name: parameter for name, parameter in model.named_parameters() if f".{ROUTER}." in name}
    found: dict[str, torch.Tensor] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open handles are not iterable
                if f".{ROUTER}." in key:
                    found[key] = handle.get_tensor(key)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise FtCoreError(
            f"mixture_of_depths: {folder} has no weights for the routers {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}; is it a model saved by a mixture_of_depths run?"
        )
    with torch.no_grad():
        for name, parameter in wanted.items():
            parameter.copy_(found[name].to(parameter.dtype))
    return len(wanted)
