"""Helpers for testing a quantizer plugin (``ft_register_quantizers``) without a whole run.

:func:`quantizer_config` is the :class:`~ft_core.api.RunConfig` that ``Quantizer.validate`` reads, and
:func:`quantizer_run` the run that ``Quantizer.prepare`` reads (that config and this process's place). Use
:func:`load_quantized` to load a saved model with the quantizer's ``load_kwargs`` (on the CPU unless they or the
caller place it), and :func:`text_batch` for a small padded causal-LM batch for a forward and backward pass.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ft_core.api import (
    DataSection,
    ModelSection,
    ProcessInfo,
    Quantizer,
    RunConfig,
    TemplateSection,
    TrainingSection,
)

__all__ = ["load_quantized", "quantizer_config", "quantizer_run", "text_batch"]


def quantizer_config(
    *, model_dtype: str = "auto", selections: dict[str, Any] | None = None, **training: Any
) -> RunConfig:
    """A run config with ``model.dtype`` ``model_dtype``, the ``identity`` demo set, the component ``selections``
    and the ``training`` keywords (``precision="bf16"``, ``use_cpu=True``, ...)."""
    return RunConfig(
        model=ModelSection(name_or_path="unused", dtype=model_dtype),  # type: ignore[arg-type]
        template=TemplateSection(),
        data=DataSection(dataset=["identity"]),
        training=TrainingSection(output_dir="unused", **training),
        selections=selections or {},
    )


def quantizer_run(**config: Any) -> SimpleNamespace:
    """What ``Quantizer.prepare`` reads of a run: :func:`quantizer_config` (same keywords) and this process's
    place (a single process)."""
    return SimpleNamespace(config=quantizer_config(**config), process=ProcessInfo())


def load_quantized(
    quantizer: Quantizer[Any], model_dir: str, options: Any, dtype: Any = None, *, device: Any = "cpu"
) -> Any:
    """The causal LM saved in ``model_dir``, loaded with ``quantizer.load_kwargs(options, config)`` in ``dtype``
    (default fp32).

    The quantizer's ``load_kwargs`` decide the placement: a ``device_map`` they set is used as is. Otherwise the
    model goes whole onto ``device``: the CPU by default (transformers would place a quantized model on a GPU when
    there is one), or e.g. ``device="cuda"`` / ``device=0`` for a GPU test.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    kwargs = dict(quantizer.load_kwargs(options, config))
    kwargs.setdefault("device_map", {"": device})
    return AutoModelForCausalLM.from_pretrained(
        model_dir, config=config, dtype=dtype or torch.float32, **kwargs
    )


def text_batch(model_dir: str) -> dict[str, Any]:
    """Two short sentences tokenized by ``model_dir``'s tokenizer, padded: ``input_ids``, ``attention_mask`` and
    ``labels`` (the input ids)."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer(["hello world, this is a tiny test", "another short sentence here"], padding=True)
    input_ids = torch.tensor(ids["input_ids"])
    return {
        "input_ids": input_ids,
        "attention_mask": torch.tensor(ids["attention_mask"]),
        "labels": input_ids,
    }
