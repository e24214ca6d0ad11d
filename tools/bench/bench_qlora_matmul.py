"""Host and GPU time of one 4-bit linear layer's training forward and backward, bitsandbytes' ``matmul_4bit``
against ft-core's fast matmul (ft-core-bitsandbytes ``fast_matmul``), on the Llama-3-8B projection shapes.

    python3 tools/bench/bench_qlora_matmul.py [tokens]     # default 4309: the workload's merged micro-batch

For each shape and path: host microseconds per forward + backward (the time until the calls return, no
synchronisation: what the Python side costs) and GPU microseconds per forward + backward (CUDA events around the
same loop, synchronised). A path is host-bound where the first exceeds the second.
"""

from __future__ import annotations

import sys
import time

import bitsandbytes as bnb
import torch

from ft_core_bitsandbytes.fast_matmul import enable_fast_matmul

#: Llama-3-8B's projections: (name, in_features, out_features).
SHAPES = [
    ("q_proj / o_proj", 4096, 4096),
    ("k_proj / v_proj", 4096, 1024),
    ("gate_proj / up_proj", 4096, 14336),
    ("down_proj", 14336, 4096),
]
REPEATS = 50


def layer(in_features: int, out_features: int, fast: bool) -> bnb.nn.Linear4bit:
    module = bnb.nn.Linear4bit(
        in_features, out_features, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4"
    )
    module.weight = bnb.nn.Params4bit(
        torch.randn(out_features, in_features, dtype=torch.bfloat16) * 0.02,
        requires_grad=False,
        quant_type="nf4",
        compress_statistics=True,
    )
    module = module.cuda()
    if fast:
        enable_fast_matmul([module])
    return module


def measure(module: bnb.nn.Linear4bit, x: torch.Tensor) -> tuple[float, float]:
    """(host µs, GPU µs) per forward + backward."""

    def step() -> None:
        module(x).backward(grad)

    grad = torch.ones(x.shape[0], module.out_features, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    began = time.perf_counter()
    for _ in range(REPEATS):
        step()
    host = (time.perf_counter() - began) / REPEATS * 1e6
    end.record()
    torch.cuda.synchronize()
    return host, start.elapsed_time(end) / REPEATS * 1e3


def main() -> None:
    tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 4309
    print(
        f"{torch.cuda.get_device_name()}, bitsandbytes {bnb.__version__}, {tokens} tokens, bf16, NF4 + double quant"
    )
    print("| shape | path | host µs / fwd+bwd | GPU µs / fwd+bwd |")
    print("| --- | --- | --- | --- |")
    for name, in_features, out_features in SHAPES:
        x = torch.randn(tokens, in_features, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        for fast in (False, True):
            host, gpu = measure(layer(in_features, out_features, fast), x)
            path = "ft-core fast_matmul" if fast else "bitsandbytes matmul_4bit"
            print(f"| {name} | {path} | {host:.0f} | {gpu:.0f} |", flush=True)


if __name__ == "__main__":
    main()
