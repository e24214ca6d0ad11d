"""Block expansion: interleave identity-initialised copies of decoder blocks into a model (LLaMA Pro).

A new block is a copy of the block before it with the projections that write into the residual stream (the
attention's ``o_proj`` and the MLP's ``down_proj``) zeroed: it adds nothing to the residual, so the expanded model
computes exactly what the original did until the new block trains. The model's config (``num_hidden_layers``,
``layer_types``) and every attention module's ``layer_idx`` (its slot in the KV cache) follow the new numbering, so
the expanded model saves and loads back as an ordinary model of its type with more layers.
"""

from __future__ import annotations

import copy
from typing import Any

from ft_core.api import FtCoreError, ModelFamily, decoder_layers

#: The linear layers of a block that write into the residual stream (attention output, MLP output).
OUTPUT_PROJECTIONS = ("o_proj", "down_proj")
#: Attribute of an expanded model holding the indices of its new blocks.
NEW_BLOCKS_ATTRIBUTE = "_ft_core_llama_pro_blocks"


def expansion_positions(layer_count: int, num_expand: int | None, expand_layers: list[int]) -> list[int]:
    """Indices of the original blocks each followed by a new block: ``expand_layers`` as given, or ``num_expand``
    blocks spread evenly (after the last block of each of ``num_expand`` equal groups, as LLaMA-Factory's
    ``llama_pro.py`` does)."""
    if expand_layers:
        outside = [i for i in expand_layers if not 0 <= i < layer_count]
        if outside:
            raise FtCoreError(
                f"adapter.expand_layers: {outside} outside the model's {layer_count} decoder layers "
                f"(0 to {layer_count - 1})"
            )
        return sorted(set(expand_layers))
    assert num_expand is not None  # LlamaProOptions requires one of the two
    if layer_count % num_expand != 0:
        divisors = [d for d in range(1, layer_count + 1) if layer_count % d == 0]
        raise FtCoreError(
            f"adapter.num_expand: {num_expand} does not divide the model's {layer_count} decoder layers into equal "
            f"groups; use one of {divisors}, or list the blocks to copy in adapter.expand_layers"
        )
    split = layer_count // num_expand
    return [split * (group + 1) - 1 for group in range(num_expand)]


def _zero_outputs(block: Any, index: int) -> None:
    """Zero the weights and biases of ``block``'s output projections (all of :data:`OUTPUT_PROJECTIONS` must exist)."""
    import torch
    from torch import nn

    found = {
        name.rsplit(".", 1)[-1]: module
        for name, module in block.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in OUTPUT_PROJECTIONS
    }
    missing = [name for name in OUTPUT_PROJECTIONS if name not in found]
    if missing:
        raise FtCoreError(
            f"adapter.method: llama_pro starts each new block as the identity by zeroing its "
            f"{' and '.join(OUTPUT_PROJECTIONS)}; decoder layer {index} ({type(block).__name__}) has no "
            f"{', '.join(missing)} linear layer (Llama-like blocks only: llama, mistral, qwen2, qwen3, ...)"
        )
    with torch.no_grad():
        for module in found.values():
            module.weight.zero_()
            if module.bias is not None:
                module.bias.zero_()


def expand_blocks(model: Any, family: ModelFamily | None, positions: list[int]) -> list[int]:
    """Insert an identity-initialised copy of each block in ``positions`` right after it (in place); returns the
    indices of the new blocks in the expanded layer list."""
    layers = decoder_layers(model, family)
    original = list(layers)
    expanded: list[Any] = []
    new_indices: list[int] = []
    for index, block in enumerate(original):
        expanded.append(block)
        if index in positions:
            copy_ = copy.deepcopy(block)
            _zero_outputs(copy_, index)
            new_indices.append(len(expanded))
            expanded.append(copy_)
    del layers[:]
    layers.extend(expanded)
    for slot, block in enumerate(layers):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = slot
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(text_config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(original):
        text_config.layer_types = [
            kind
            for index, kind in enumerate(layer_types)
            for kind in ([kind, kind] if index in positions else [kind])
        ]
    text_config.num_hidden_layers = len(layers)
    model.__dict__[NEW_BLOCKS_ATTRIBUTE] = new_indices
    return new_indices


def layers_attribute(model: Any, family: ModelFamily | None) -> str:
    """The attribute name of ``model``'s decoder-layer list (``layers``), for PEFT's ``layers_pattern``."""
    layers = decoder_layers(model, family)
    name = next(name for name, module in model.named_modules() if module is layers)
    return name.rsplit(".", 1)[-1]
