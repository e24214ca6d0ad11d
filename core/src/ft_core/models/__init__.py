"""Model loading: the embedded default model, GGUF conversion, tokenizer/model loading and adapter helpers.

Import-light: torch and transformers are imported only inside the functions that need them.
"""

from ft_core.models.embedded import EMBEDDED_ALIAS, check_model_reference, resolve_model_path
from ft_core.models.gguf import convert_gguf
from ft_core.models.loader import (
    choose_dtype,
    linear_module_names,
    load_model,
    load_tokenizer,
    prepare_for_training,
    resolve_family,
)

__all__ = [
    "EMBEDDED_ALIAS",
    "check_model_reference",
    "choose_dtype",
    "convert_gguf",
    "linear_module_names",
    "load_model",
    "load_tokenizer",
    "prepare_for_training",
    "resolve_family",
    "resolve_model_path",
]
