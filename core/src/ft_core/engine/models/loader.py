"""Load tokenizers and models from a ``model`` config section, with quantizers and patches applied.

torch and transformers are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.api.config import ModelSection
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError, PluginError
from ft_core.engine.models.embedded import resolve_model_path

logger = logging.getLogger(__name__)

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
    return resolve_model_path(
        model.name_or_path, model.cache_dir, revision=model.revision, hub_cache_dir=model.hub_cache_dir
    )


def load_tokenizer(model: ModelSection, padding_side: str = "right") -> Any:
    """Load the tokenizer of ``model`` (or of ``model.tokenizer``) and make sure it has a pad token.

    A tokenizer without a pad token gets its EOS token as pad token; ``padding_side`` is ``right`` for
    training (use ``left`` for batched generation).
    """
    from transformers import AutoTokenizer

    if model.tokenizer:
        folder = resolve_model_path(
            model.tokenizer, model.cache_dir, kind="tokenizer", hub_cache_dir=model.hub_cache_dir
        )
    else:
        folder = model_folder(model)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=model.trust_remote_code)
    add_configured_tokens(tokenizer, model)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise FtCoreError(f"the tokenizer in {folder!r} has neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def add_configured_tokens(tokenizer: Any, model: ModelSection) -> int:
    """Add ``model.add_tokens`` (ordinary) and ``model.add_special_tokens`` to ``tokenizer`` (those it lacks);
    returns how many were added."""
    added = 0
    if model.add_tokens:
        added += tokenizer.add_tokens(list(model.add_tokens), special_tokens=False)
    if model.add_special_tokens:
        added += tokenizer.add_tokens(list(model.add_special_tokens), special_tokens=True)
    return added


def grow_embeddings(model: Any, vocabulary: int) -> int:
    """Grow ``model``'s input (and output) embeddings to ``vocabulary`` rows when it has fewer (the new rows start
    at the mean of the old ones, as transformers' ``mean_resizing`` does); returns the rows added."""
    rows = int(model.get_input_embeddings().weight.shape[0])
    if vocabulary <= rows:
        return 0
    model.resize_token_embeddings(vocabulary)
    return vocabulary - rows


def embedding_module_names(model: Any) -> list[str]:
    """The short names (``embed_tokens``, ``lm_head``) of ``model``'s input and output embedding modules."""
    wanted = [m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None]
    names = [
        name.rsplit(".", 1)[-1] for name, module in model.named_modules() if any(module is w for w in wanted)
    ]
    return list(dict.fromkeys(names))


def resolve_family(plugins: Plugins, model_config: Any) -> ModelFamily | None:
    """The registered model family of ``model_config``, or ``None`` (the caller warns).

    A family naming one of the config's ``architectures`` wins over one claiming its ``model_type`` (remote-code
    models often keep a generic ``model_type``). Two families matching equally is an error naming both.
    """
    model_type = getattr(model_config, "model_type", None)
    architectures = list(getattr(model_config, "architectures", None) or [])
    families = [(name, plugins.get("model_family", name)) for name in plugins.names("model_family")]
    by_architecture = [name for name, family in families if set(architectures) & set(family.architectures)]
    by_type = [name for name, family in families if model_type in family.model_types]
    names = by_architecture or by_type
    if len(names) > 1:
        claims = ", ".join(f"{n} ({plugins.registration('model_family', n).distribution})" for n in names)
        raise PluginError(f"model_type {model_type!r} is claimed by several model families: {claims}")
    return plugins.get("model_family", names[0]) if names else None


def read_model_config(folder: str | Path) -> dict[str, Any] | None:
    """The ``config.json`` of the local model folder ``folder`` as a dict; ``None`` when there is no readable one
    (a hub id, a missing or broken file: transformers reports a broken file itself when loading)."""
    try:
        config = json.loads((Path(folder).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def require_remote_code_consent(folder: str, trust_remote_code: bool) -> None:
    """A model whose ``config.json`` maps its classes to its own Python code (``auto_map``) loads only with
    ``model.trust_remote_code: true``; say so before transformers fails with a generic message."""
    if trust_remote_code:
        return
    config = read_model_config(folder) or {}
    auto_map = config.get("auto_map")
    if auto_map:
        raise FtCoreError(
            f"the model in {folder!r} ({config.get('model_type', 'unknown model_type')}) ships its own Python code "
            f"(config.json auto_map: {', '.join(sorted(auto_map))}), which transformers runs only when allowed. If you "
            "trust this model's code, set `model.trust_remote_code: true` in the config (or add "
            "model.trust_remote_code=true to the command line)."
        )


#: Weight files transformers and PEFT read with pickle (``torch.load``), when a folder has no safetensors.
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")


def pickle_only_weights(folder: str | Path) -> list[str]:
    """The pickle weight files of the local folder ``folder`` when it holds no safetensors file (what loading it
    would unpickle); empty otherwise (safetensors, no weights, or not a local folder)."""
    path = Path(folder).expanduser()
    try:
        if not path.is_dir() or any(path.glob("*.safetensors")) or any(path.glob("*.safetensors.index.json")):
            return []
        return sorted(p.name for p in path.iterdir() if p.name in PICKLE_WEIGHTS or p.name.endswith(".bin"))
    except OSError:  # a name too long, an unreadable folder: rule model.reference says so
        return []


def pickle_problem(folder: str | Path, allow_pickle: bool, what: str = "the model") -> str | None:
    """Why ``folder`` must not load: its weights are only pickle files and ``model.allow_pickle`` is off."""
    files = pickle_only_weights(folder)
    if not files or allow_pickle:
        return None
    return (
        f"{what} in {str(folder)!r} has only pickle weight files ({', '.join(files)}), which can run code when "
        "loaded; ft-core loads safetensors only. Convert them to safetensors (save_pretrained with the default "
        "safe_serialization), or set model.allow_pickle: true in the run's config if you trust these files"
    )


def require_safe_weights(folder: str | Path, allow_pickle: bool, what: str = "the model") -> None:
    """Refuse ``folder`` when it has only pickle weight files and ``model.allow_pickle`` is off; warn when it is on
    and they load."""
    problem = pickle_problem(folder, allow_pickle, what)
    if problem is not None:
        raise FtCoreError(f"model.allow_pickle: {problem}")
    files = pickle_only_weights(folder)
    if files:
        logger.warning(
            f"model.allow_pickle: true: loading pickle weight files of {what} ({', '.join(files)} in {folder}); "
            "unpickling can run code from the file: only for files you trust"
        )


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


def prepare_for_training(model: Any, gradient_checkpointing: Any) -> Any:
    """Turn the KV cache off and apply activation checkpointing, with input gradients for reentrant checkpoints
    only (:func:`set_input_grads`).

    ``gradient_checkpointing``: the run's plan (``ft_core.engine.training.checkpointing.CheckpointingPlan``: its
    ``kwargs()`` are the ``activation_checkpointing_kwargs``, ``None`` when off), or a bool (``True``: every layer,
    non-reentrant).
    """
    if hasattr(gradient_checkpointing, "kwargs"):
        kwargs = gradient_checkpointing.kwargs()
    else:
        kwargs = {"use_reentrant": False} if gradient_checkpointing else None
    model.config.use_cache = False
    if kwargs is not None and not getattr(model, "supports_gradient_checkpointing", False):
        raise FtCoreError(
            f"{type(model).__name__} does not support gradient checkpointing; "
            "set training.gradient_checkpointing: false"
        )
    set_checkpointing(model, kwargs)  # off: undoes checkpointing a quantizer's preparation may have turned on
    if kwargs is not None:
        set_input_grads(model, reentrant=kwargs.get("use_reentrant", True))
    return model


def set_input_grads(model: Any, *, reentrant: bool) -> None:
    """Make the embeddings' output require gradients for reentrant checkpoints, which pass gradients to a layer's
    weights only when its input requires them; drop it for non-reentrant ones (transformers turns it on with any
    checkpointing), which need nothing: the backward pass then stops below the lowest trained layer (freeze
    tuning backpropagates through its trained layers only, as LLaMA-Factory's does)."""
    base = base_model(model)
    hooked = bool(getattr(base, "_require_grads_hooks", None) or getattr(base, "_require_grads_hook", None))
    if reentrant and not hooked:
        base.enable_input_require_grads()
    elif not reentrant and hooked:
        base.disable_input_require_grads()


def base_model(model: Any) -> Any:
    """The transformers model inside ``model`` (a PEFT model's base model), or ``model`` itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def set_checkpointing(model: Any, kwargs: dict[str, Any] | None) -> None:
    """Turn activation checkpointing on with ``kwargs`` (``use_reentrant`` for ``torch.utils.checkpoint``,
    ``every_n_layers`` for transformers, ``offload`` for :func:`~ft_core.engine.models.offload.offload_checkpoints`),
    or off when ``kwargs`` is ``None`` and it is on."""
    if kwargs is None:
        active = getattr(model, "is_activation_checkpointing", None)
        if active is None:  # pragma: no cover - older transformers
            active = getattr(model, "is_gradient_checkpointing", False)
        if active:
            disable = (
                getattr(model, "activation_checkpointing_disable", None)
                or model.gradient_checkpointing_disable
            )
            disable()
        return
    kwargs = dict(kwargs)
    every_n, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs, every_n_layers=every_n)
    else:  # older transformers: no every_n_layers argument
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        checkpoint_every_nth_layer(model, every_n)
    if offload:  # ft-core's own offloading: copies on a side stream (see ft_core.engine.models.offload)
        from ft_core.engine.models.offload import offload_checkpoints

        offload_checkpoints(model)


def checkpoint_every_nth_layer(model: Any, every_n: int) -> None:
    """Keep checkpointing on for every ``every_n``-th decoder layer only (layers 0, n, 2n, ...), as transformers'
    ``every_n_layers`` does; for releases without it, and after a Trainer turned every layer on again."""
    if every_n <= 1:
        return
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for index, layer in enumerate(layers):
        layer.gradient_checkpointing = index % every_n == 0


def apply_rope_scaling(model_config: Any, rope_scaling: dict[str, Any] | None, cutoff_len: int) -> str | None:
    """Set ``model.rope_scaling`` (normalised by the config schema) on ``model_config`` before the model is built;
    returns a log line, or ``None`` without scaling.

    ``factor`` defaults to ``ceil(cutoff_len / max_position_embeddings)``. For ``linear``, ``yarn`` and ``llama3``
    ``max_position_embeddings`` becomes ``original × factor`` (``original_max_position_embeddings`` keeps the
    pretrained length); ``dynamic`` keeps it, as transformers' dynamic NTK scaling reads the pretrained length from
    it. ``llama3`` defaults to Llama 3.1's ``low_freq_factor: 1``, ``high_freq_factor: 4``.
    """
    import math

    if not rope_scaling:
        return None
    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    if not hasattr(text, "rope_parameters") and not hasattr(text, "rope_scaling"):
        raise FtCoreError(
            f"model.rope_scaling: {getattr(model_config, 'model_type', 'this model')} has no rotary position "
            "embedding to scale; remove rope_scaling"
        )
    kind = rope_scaling["type"]
    existing = dict(getattr(text, "rope_parameters", None) or {})
    if existing.get("rope_type", "default") not in ("default", kind):
        raise FtCoreError(
            f"model.rope_scaling: the model already uses {existing['rope_type']} RoPE scaling; remove "
            "rope_scaling, or give the same type to change its factor"
        )
    original = int(
        rope_scaling.get("original_max_position_embeddings")
        or existing.get("original_max_position_embeddings")
        or getattr(text, "max_position_embeddings", None)
        or 0
    )
    if original <= 0:
        raise FtCoreError("model.rope_scaling: the model config has no max_position_embeddings to scale from")
    factor = rope_scaling.get("factor") or float(max(1, math.ceil(cutoff_len / original)))
    same = existing.get("rope_type") == kind  # changing the factor of the model's own scaling keeps its keys
    parameters = {k: v for k, v in existing.items() if same or k in ("rope_theta", "partial_rotary_factor")}
    if "rope_theta" not in parameters and getattr(text, "rope_theta", None) is not None:
        parameters["rope_theta"] = text.rope_theta
    parameters.update({k: v for k, v in rope_scaling.items() if k not in ("type", "factor")})
    parameters.update(rope_type=kind, factor=factor)
    if kind == "llama3":
        parameters.setdefault("low_freq_factor", 1.0)
        parameters.setdefault("high_freq_factor", 4.0)
    if kind in ("yarn", "llama3"):
        parameters["original_max_position_embeddings"] = original
    if kind != "dynamic":
        text.max_position_embeddings = int(original * factor)
    text.rope_parameters = parameters
    if hasattr(text, "validate_rope"):
        with loading("model config", "model.rope_scaling"):
            text.validate_rope()
    note = (
        f"; cutoff_len {cutoff_len} is longer than the {int(original * factor)} positions it covers"
        if cutoff_len > original * factor
        else ""
    )
    return (
        f"rope scaling: {kind}, factor {factor:g} (pretrained length {original}, "
        f"max_position_embeddings {text.max_position_embeddings}){note}"
    )
