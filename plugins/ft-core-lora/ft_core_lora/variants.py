"""LoRA variants: PiSSA (saved as a plain LoRA adapter of the original base), LoftQ (a quantized base with the
adapter fitted to its quantization error) and LoRA+ (the B matrices in their own parameter group).

Imported when the adapter is used (torch, peft, bitsandbytes are loaded here, never at registration)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ft_core.api import FtCoreError

#: File of a LoftQ artefact that records how the base weights were quantized (the adapter fits that base).
LOFTQ_FILE = "ft_core_loftq.json"
_INITIAL = "_ft_core_initial_lora"
_LOFTQ = "_ft_core_loftq"
_PREFIX = "base_model.model."


def _lora_layers(model: Any, adapter: str = "default") -> list[tuple[str, Any]]:
    return [
        (name, module)
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and adapter in getattr(module, "lora_A", {})
    ]


# --------------------------------------------------------------------------- PiSSA
def remember_initial_adapter(peft_model: Any) -> None:
    """Keep a copy of the PiSSA-initialised A and B matrices (CPU), to convert the trained adapter at save."""
    initial = {
        name.replace(".default.", "."): parameter.detach().to("cpu", copy=True)
        for name, parameter in peft_model.named_parameters()
        if ".lora_A.default." in name or ".lora_B.default." in name
    }
    peft_model.__dict__[_INITIAL] = initial


def _convert_pissa(output_dir: Path, initial: dict[str, Any]) -> None:
    """``W + dW = W_res + B A`` and ``W = W_res + B0 A0``, so ``dW = [B | -B0] [A ; A0]``: a LoRA adapter of rank
    ``2r`` over the original weights (alpha scaled so that ``alpha / r`` or ``alpha / sqrt(r)`` is unchanged)."""
    import torch
    from safetensors.torch import load_file, save_file

    weights_path = output_dir / "adapter_model.safetensors"
    tensors = load_file(str(weights_path))
    for key, value in list(tensors.items()):
        start = initial.get(key)
        if start is None:
            continue
        start = start.to(value.dtype)
        if ".lora_A." in key:
            tensors[key] = torch.cat([value, start], dim=0).contiguous()
        elif ".lora_B." in key:
            tensors[key] = torch.cat([value, -start], dim=1).contiguous()
    save_file(tensors, str(weights_path), metadata={"format": "pt"})
    config_path = output_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    factor = math.sqrt(2.0) if config.get("use_rslora") else 2.0
    config["r"] = 2 * int(config["r"])
    config["lora_alpha"] = float(config["lora_alpha"]) * factor
    config["init_lora_weights"] = True
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


# --------------------------------------------------------------------------- LoftQ
def fake_quantize(weight: Any, bits: int) -> Any:
    """``dequantize(quantize(weight))`` in ``weight``'s dtype: NF4 (block size 64) for 4 bits, bitsandbytes'
    row-wise int8 for 8. Deterministic, so loading an artefact repeats it exactly."""
    import bitsandbytes.functional as bnbf

    data = weight.detach().float().contiguous()
    if bits == 4:
        packed, state = bnbf.quantize_4bit(data, blocksize=64, compress_statistics=False, quant_type="nf4")
        restored = bnbf.dequantize_4bit(packed, state)
    elif bits == 8:
        quantized, scales, _ = bnbf.int8_vectorwise_quant(data)
        restored = bnbf.int8_vectorwise_dequant(quantized, scales)
    else:  # pragma: no cover - LoraOptions refuses other widths
        raise FtCoreError(f"LoftQ: {bits}-bit quantization is not supported (4 or 8)")
    return restored.to(weight.dtype).reshape(weight.shape)


def loftq_initialise(peft_model: Any, bits: int) -> None:
    """LoftQ (one alternating step): each adapted weight ``W`` becomes ``Q = fake_quantize(W)`` and the adapter
    starts at the best rank-``r`` fit of ``W - Q`` (its SVD), scaled so that ``Q + scaling * B A ~ W``."""
    import torch

    targets = []
    with torch.no_grad():
        for name, module in _lora_layers(peft_model):
            base = module.get_base_layer()
            weight = base.weight
            if weight.ndim != 2 or not weight.dtype.is_floating_point:
                raise FtCoreError(f"LoftQ: {name} is not a full-precision linear layer ({weight.dtype})")
            quantized = fake_quantize(weight, bits)
            residual = weight.detach().float() - quantized.float()
            rank = module.r["default"]
            u, s, vh = torch.linalg.svd(residual, full_matrices=False)
            root = s[:rank].sqrt()
            lora_b = u[:, :rank] * root / module.scaling["default"]
            lora_a = root[:, None] * vh[:rank]
            module.lora_A["default"].weight.copy_(lora_a.to(module.lora_A["default"].weight.dtype))
            module.lora_B["default"].weight.copy_(lora_b.to(module.lora_B["default"].weight.dtype))
            weight.copy_(quantized)
            targets.append(name.removeprefix(_PREFIX))
    peft_model.__dict__[_LOFTQ] = {"bits": bits, "modules": targets}


def requantize_for_loftq(base: Any, artefact_dir: str) -> None:
    """A LoftQ artefact fits a quantized base: quantize the listed weights of ``base`` the same way (no-op for
    other artefacts)."""
    path = Path(artefact_dir) / LOFTQ_FILE
    if not path.is_file():
        return
    import torch

    record = json.loads(path.read_text())
    modules = dict(base.named_modules())
    with torch.no_grad():
        for name in record["modules"]:
            module = modules.get(name)
            if module is None:
                raise FtCoreError(f"{artefact_dir}: LoftQ module {name!r} is not in {type(base).__name__}")
            module.weight.copy_(fake_quantize(module.weight, int(record["bits"])))


# --------------------------------------------------------------------------- saving
def save_adapter(model: Any, output_dir: str) -> None:
    """``save_pretrained``, then convert a PiSSA adapter / record a LoftQ base (see :class:`LoraAdapter.save`)."""
    model.save_pretrained(output_dir)
    initial = model.__dict__.get(_INITIAL)
    if initial is not None:
        _convert_pissa(Path(output_dir), initial)
    loftq = model.__dict__.get(_LOFTQ)
    if loftq is not None:
        (Path(output_dir) / LOFTQ_FILE).write_text(json.dumps(loftq, indent=2))


# --------------------------------------------------------------------------- LoRA+
def lora_plus_groups(
    groups: list[dict[str, Any]], model: Any, ratio: float, learning_rate: float
) -> list[dict[str, Any]]:
    """``groups`` with the LoRA B matrices moved into groups of their own at ``lr x ratio`` (a group's own ``lr``,
    else ``learning_rate``), each keeping the rest of its group's settings (weight decay ...)."""
    b_matrices = {id(p) for n, p in model.named_parameters() if ".lora_B." in n or ".lora_embedding_B." in n}
    plain: list[dict[str, Any]] = []
    boosted: list[dict[str, Any]] = []
    for group in groups:
        params = list(group["params"])
        rest = [p for p in params if id(p) not in b_matrices]
        moved = [p for p in params if id(p) in b_matrices]
        if rest:
            plain.append({**group, "params": rest})
        if moved:
            boosted.append({**group, "params": moved, "lr": group.get("lr", learning_rate) * ratio})
    return plain + boosted
