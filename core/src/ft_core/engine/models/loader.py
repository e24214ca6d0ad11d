"""Load tokenizers and models from a ``model`` config section, with quantizers and patches applied.

torch and transformers are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ft_core.api.config import ModelSection
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError, PluginError
from ft_core.engine.models.embedded import resolve_model_path

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from ft_core.engine.plugins import Plugins


@contextlib.contextmanager
def loading(what: str, reference: str) -> Iterator[None]:
    """Turn a library's error while loading ``what`` from ``reference`` (missing weights, a broken config.json, a
    file that is not GGUF, an unknown architecture) into a :class:`FtCoreError` naming it and what to check."""
    try:
        yield
    except FtCoreError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FtCoreError(
            f"cannot load the {what} from {reference!r}: {detail}. Check that it is a complete Hugging Face model "
            "folder (config.json with a model_type this transformers knows, the weights, the tokenizer files) or a "
            "valid .gguf file"
        ) from exc


def model_folder(model: ModelSection) -> str:
    """The local Hugging Face folder of ``model.name_or_path`` (GGUF files are converted once)."""
    return resolve_model_path(model.name_or_path, model.cache_dir)


def load_tokenizer(model: ModelSection, padding_side: str = "right") -> Any:
    """Load the tokenizer of ``model`` (or of ``model.tokenizer``) and make sure it has a pad token.

    A tokenizer without a pad token gets its EOS token as pad token; ``padding_side`` is ``right`` for
    training (use ``left`` for batched generation).
    """
    from transformers import AutoTokenizer

    if model.tokenizer:
        folder = resolve_model_path(model.tokenizer, model.cache_dir, kind="tokenizer")
    else:
        folder = model_folder(model)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=model.trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise FtCoreError(f"the tokenizer in {folder!r} has neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def resolve_family(plugins: Plugins, model_config: Any) -> ModelFamily | None:
    """The registered model family covering ``model_config.model_type``, or ``None`` (the caller warns).

    Two families claiming the same ``model_type`` is an error naming both distributions.
    """
    model_type = getattr(model_config, "model_type", None)
    matches = [
        plugins.registration("model_family", name)
        for name in plugins.names("model_family")
        if model_type in plugins.get("model_family", name).model_types
    ]
    if len(matches) > 1:
        claims = ", ".join(f"{m.name} ({m.distribution})" for m in matches)
        raise PluginError(f"model_type {model_type!r} is claimed by several model families: {claims}")
    return matches[0].component if matches else None


def choose_dtype(model: ModelSection, precision: str, use_cpu: bool | None) -> torch.dtype:
    """The dtype to load weights in: ``model.dtype`` when set, else from ``training.precision``.

    ``auto`` precision means bfloat16 on a CUDA GPU that supports it (and ``use_cpu`` is not set), else float32.
    """
    import torch

    explicit = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if model.dtype != "auto":
        return explicit[model.dtype]
    by_precision = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in by_precision:
        return by_precision[precision]
    on_gpu = not use_cpu and torch.cuda.is_available()
    return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32


def prepare_for_training(model: Any, gradient_checkpointing: bool) -> Any:
    """Turn the KV cache off and, if asked, enable (non-reentrant) gradient checkpointing with input grads."""
    model.config.use_cache = False
    if gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise FtCoreError(
                f"{type(model).__name__} does not support gradient checkpointing; "
                "set training.gradient_checkpointing: false"
            )
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if not getattr(model, "_require_grads_hooks", None):
            model.enable_input_require_grads()
    return model
