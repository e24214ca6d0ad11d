"""GPU smoke benchmark of the torchao quantizer: peak memory and step time of LoRA training per scheme.

A Llama-shaped random model (Llama-3.2-1B shape by default: hidden 2048, 16 layers, 8 KV heads, MLP 8192,
vocabulary 128256; ~1.2B parameters) is saved once in bf16, then loaded for each scheme exactly as a run loads it
(``TorchAoQuantizer.load_kwargs`` -> ``from_pretrained`` on the GPU -> ``prepare``), given LoRA adapters on every
projection (PEFT; trainable parameters upcast to fp32 as the ``lora`` adapter does) and trained for a few AdamW
steps under bf16 autocast on random tokens. ``bf16`` is the unquantized baseline.

    python plugins/ft-core-torchao/tests/gpu_smoke.py                  # every scheme, 5 steps of 4 x 1024
    python plugins/ft-core-torchao/tests/gpu_smoke.py --schemes bf16,float8_dynamic --json $OUT/torchao.json

Prints, per scheme: GPU memory of the loaded model, bytes of the (quantized) projection weights, peak memory
while training, the median step time of the steps after the first (compilation-free warm-up) and the losses.
Not a pytest test (the ``gpu_`` prefix keeps pytest from collecting it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: ``float8_dynamic_fp8_backward`` = ``float8_dynamic`` with ``fp8_backward: true``.
SCHEMES = ("bf16", "float8_dynamic", "float8_dynamic_fp8_backward", "float8_weight_only", "int8_weight_only")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated; bf16 = unquantized")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--intermediate", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--device", default="cuda", help="cpu: a dry run of the script's logic (weight-only schemes)"
    )
    return parser.parse_args(argv)


def build_model_dir(args: argparse.Namespace, path: str) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        vocab_size=args.vocab,
        max_position_embeddings=max(2048, args.seq),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(path)
    del model
    _empty_cache()
    return parameters


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _empty_cache() -> None:
    import torch

    if _cuda():
        torch.cuda.empty_cache()


def _synchronize() -> None:
    import torch

    if _cuda():
        torch.cuda.synchronize()


def _allocated() -> int:
    import torch

    return torch.cuda.memory_allocated() if _cuda() else 0


def _peak() -> int:
    import torch

    return torch.cuda.max_memory_allocated() if _cuda() else 0


def _reset_peak() -> None:
    import torch

    if _cuda():
        torch.cuda.reset_peak_memory_stats()


def measure(scheme: str, model_dir: str, args: argparse.Namespace) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch import nn
    from transformers import AutoConfig, AutoModelForCausalLM

    from ft_core.testing.quantizers import quantizer_run
    from ft_core_torchao import TorchAoOptions, TorchAoQuantizer
    from ft_core_torchao.linear import weight_bytes

    _empty_cache()
    _reset_peak()
    base = _allocated()
    config = AutoConfig.from_pretrained(model_dir)
    kwargs = {}
    quantizer = options = None
    if scheme != "bf16":
        fp8_backward = scheme == "float8_dynamic_fp8_backward"
        options = TorchAoOptions(
            scheme="float8_dynamic" if fp8_backward else scheme, fp8_backward=fp8_backward
        )
        quantizer = TorchAoQuantizer()
        kwargs = quantizer.load_kwargs(options, config)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        config=config,
        dtype=torch.bfloat16,
        device_map={"": 0 if args.device == "cuda" else args.device},
        **kwargs,
    )
    if quantizer is not None:
        model = quantizer.prepare(
            model,
            options,
            quantizer_run(precision="bf16", gradient_checkpointing=args.gradient_checkpointing),
        )
    else:
        model.requires_grad_(False)
    load_s = time.perf_counter() - start
    model.config.use_cache = False
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    _synchronize()
    model_gib = (_allocated() - base) / 2**30
    projections = [
        m
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in PROJECTIONS
    ]
    projection_gib = sum(weight_bytes(m) for m in projections) / 2**30
    model = get_peft_model(
        model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=list(PROJECTIONS))
    )
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator(device=args.device).manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=args.device, generator=generator)
    model.train()
    times, losses = [], []
    _reset_peak()
    for _ in range(args.steps):
        _synchronize()
        start = time.perf_counter()
        with torch.autocast(args.device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _synchronize()
        times.append(time.perf_counter() - start)
        losses.append(round(loss.item(), 4))
    result = {
        "scheme": scheme,
        "load_s": round(load_s, 1),
        "model_gib": round(model_gib, 3),
        "projection_weights_gib": round(projection_gib, 3),
        "peak_gib": round(_peak() / 2**30, 3),
        "step_s_median": round(statistics.median(times[1:] or times), 4),
        "step_s_first": round(times[0], 4),
        "tokens_per_s": round(args.batch * args.seq / statistics.median(times[1:] or times)),
        "losses": losses,
    }
    del model, optimizer, loss
    _empty_cache()
    return result


def _importable() -> None:
    """Make ``ft_core`` and ``ft_core_torchao`` importable from this checkout when they are not installed."""
    import importlib.util
    from pathlib import Path

    plugin = Path(__file__).resolve().parents[1]
    for name, folder in (("ft_core", plugin.parents[1] / "core" / "src"), ("ft_core_torchao", plugin)):
        if importlib.util.find_spec(name) is None:
            sys.path.insert(0, str(folder))


def main(argv: list[str] | None = None) -> int:
    _importable()
    import torch

    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_smoke: no CUDA GPU (--device cpu runs a dry run of the weight-only schemes)", file=sys.stderr
        )
        return 1
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = set(schemes) - set(SCHEMES)
    if unknown:
        print(
            f"gpu_smoke: unknown schemes {sorted(unknown)}; choose from {', '.join(SCHEMES)}", file=sys.stderr
        )
        return 2
    from ft_core_torchao.quantizer import quiet_torchao_logs

    quiet_torchao_logs()  # as registering the plugin does in a run
    import torchao
    import transformers

    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        capability = ".".join(map(str, torch.cuda.get_device_capability()))
    else:
        name, capability = args.device, "-"
    print(
        f"{name} (sm {capability}), torch {torch.__version__}, torchao {torchao.__version__}, "
        f"transformers {transformers.__version__}; batch {args.batch} x {args.seq}, {args.steps} steps, LoRA r{args.rank}"
    )
    results = []
    with tempfile.TemporaryDirectory() as model_dir:
        parameters = build_model_dir(args, model_dir)
        print(f"model: {parameters / 1e9:.2f}B parameters (bf16 {parameters * 2 / 2**30:.2f} GiB)")
        header = f"{'scheme':<30}{'model GiB':>10}{'proj GiB':>10}{'peak GiB':>10}{'step s':>9}{'tok/s':>9}  losses"
        print(header)
        for scheme in schemes:
            try:
                result = measure(scheme, model_dir, args)
            except Exception as exc:  # report and go on with the next scheme
                result = {"scheme": scheme, "error": f"{type(exc).__name__}: {exc}"}
                print(f"{scheme:<30}FAILED {result['error'][:500]}", flush=True)
            else:
                print(
                    f"{scheme:<30}{result['model_gib']:>10.2f}{result['projection_weights_gib']:>10.2f}"
                    f"{result['peak_gib']:>10.2f}{result['step_s_median']:>9.3f}{result['tokens_per_s']:>9}  "
                    f"{result['losses']}",
                    flush=True,
                )
            results.append(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": name, "args": vars(args), "results": results}, handle, indent=2)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
