"""ft-core plugin: the ``starcoder2`` model family (StarCoder2 base code models).

StarCoder2 has no chat template: train it with a generic template (``default`` or ``alpaca`` for instruction
data, ``empty`` for plain text). Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ModelFamily, Register, hookimpl

__version__ = "0.2.0"

STARCODER2_FAMILY = ModelFamily(
    model_types=("starcoder2",),
    architectures=("Starcoder2ForCausalLM",),
    default_template=None,  # base models: any generic template (`default`, `alpaca`, `empty`)
    templates=(),
    decoder_layers="model.layers",
    # Attention q/k/v/o projections and the MLP's c_fc / c_proj.
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"),
    models=("bigcode/starcoder2-3b", "bigcode/starcoder2-7b", "bigcode/starcoder2-15b"),
    description=(
        "StarCoder2 base code models (Starcoder2ForCausalLM); no chat template: use `default` or `alpaca` for "
        "instruction data"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``starcoder2``."""
    register("starcoder2", STARCODER2_FAMILY)
