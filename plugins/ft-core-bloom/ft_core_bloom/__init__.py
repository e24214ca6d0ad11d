"""ft-core plugin: the ``bloom`` model family (BLOOM / BLOOMZ).

BLOOM and BLOOMZ are base / instruction-tuned models without a chat template: no default template; train them with
a generic template (``alpaca`` for instruction data, ``default`` for Human/Assistant turns, from
ft-core-templates-generic). Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ModelFamily, Register, hookimpl

__version__ = "0.2.0"
__all__ = ["BLOOM_FAMILY"]

BLOOM_FAMILY = ModelFamily(
    model_types=("bloom",),
    architectures=("BloomForCausalLM",),
    default_template=None,
    templates=(),
    decoder_layers="transformer.h",
    lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    models=(
        "bigscience/bloom-560m (560M)",
        "bigscience/bloom-7b1 (7.1B)",
        "bigscience/bloom (176B)",
        "bigscience/bloomz-7b1 (7.1B, instruction-tuned)",
    ),
    description="BLOOM / BLOOMZ (BloomForCausalLM)",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``bloom``."""
    register("bloom", BLOOM_FAMILY)
