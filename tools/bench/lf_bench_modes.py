"""LLaMA-Factory 0.9.5 on the reference workload, in the LLaMA-Factory modes ``bench_sft.py`` compares with: the
shared ``lf_bench.py`` (``lora``, ``qlora4``) plus ``lora_liger`` (LLaMA-Factory's own ``enable_liger_kernel``),
``lora_unsloth`` and ``qlora4_unsloth`` (its ``use_unsloth``) and
the memory-saving methods of the memory table (``galore``, ``apollo``, ``badam``, ``freeze``: LLaMA-Factory's own
examples' settings on the workload, the same as the ft-core ``mem_*`` modes) and the training stages (``dpo``,
``orpo``, ``simpo``, ``kto``, ``rm``, ``ppo``: LoRA on the workload's rows as pairs, tagged rows or prompts; ``ppo``
rewards with the ``rm`` mode's model, so run ``rm`` first).

Usage: python tools/bench/lf_bench_modes.py LF_BENCH_PY WORK MODE [steps] [--long N]   (MODE: one of MODES)

``--long N`` trains one row of exactly ``N`` tokens per step instead (``long_rows.py``: the long-context measure).

After ``lf_bench.py``'s own ``RESULT`` line it prints a second, final one with ``system: LLaMA-Factory``: the
non-padding tokens the Trainer really saw (``measured_tokens``: the attention masks of every micro-batch, summed on
the GPU without a sync per step) and ``measured_tokens_per_sec`` over the train runtime (LLaMA-Factory's own
``effective_tokens_per_sec`` is an estimate from the dataset size), and MFU with ``bench_flops.py``'s formula.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flops import mfu, peak_tflops, workload_flops
from long_rows import long_options

#: Each mode: the ``lf_bench.py`` mode it starts from and the LLaMA-Factory arguments it adds.
MODES: dict[str, tuple[str, dict]] = {
    "lora": ("lora", {}),
    "lora_liger": ("lora", {"enable_liger_kernel": True}),
    "qlora4": ("qlora4", {}),
    # LLaMA-Factory's own Unsloth path (needs unsloth beside LLaMA-Factory's stack: the bench script's /tmp/unsloth)
    "lora_unsloth": ("lora", {"use_unsloth": True}),
    "qlora4_unsloth": ("qlora4", {"use_unsloth": True}),
    # examples/extras/galore/llama3_full_sft.yaml: layer-wise (accumulation 1, so 8 rows as 8 x 1), pure bf16
    "galore": (
        "full",
        {
            "use_galore": True,
            "galore_layerwise": True,
            "galore_target": "all",
            "galore_rank": 16,
            "pure_bf16": True,
            "optim": "adamw_torch",  # its GaLore refuses transformers 5's default adamw_torch_fused
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1,
        },
    ),
    "apollo": (
        "full",
        {
            "use_apollo": True,
            "apollo_target": "all",
            "apollo_rank": 1,
            "apollo_scale_type": "tensor",
            "pure_bf16": True,
            "optim": "adamw_torch",  # its APOLLO refuses transformers 5's default adamw_torch_fused
        },
    ),
    # examples/extras/badam/llama3_full_sft.yaml (layer mode), switching every 5 steps as mem_badam does
    "badam": (
        "full",
        {
            "use_badam": True,
            "badam_mode": "layer",
            "badam_switch_mode": "ascending",
            "badam_switch_interval": 5,
        },
    ),
    "freeze": ("full", {"finetuning_type": "freeze", "freeze_trainable_layers": 2}),
    # the training stages on the workload's rows (bench_sft.add_stage_datasets registers the data sets), LoRA
    "dpo": ("lora", {"stage": "dpo", "dataset": "synth_pref", "pref_beta": 0.1, "pref_loss": "sigmoid"}),
    "orpo": ("lora", {"stage": "dpo", "dataset": "synth_pref", "pref_beta": 0.1, "pref_loss": "orpo"}),
    "simpo": ("lora", {"stage": "dpo", "dataset": "synth_pref", "pref_loss": "simpo"}),
    "kto": ("lora", {"stage": "kto", "dataset": "synth_kto", "pref_beta": 0.1}),
    "rm": ("lora", {"stage": "rm", "dataset": "synth_pref", "output_dir": "{work}/out_lf_rm"}),
    # the reward model is the rm mode's LoRA run (run rm first in the same call), 128 new tokens as ppo_lora
    "ppo": (
        "lora",
        {
            "stage": "ppo",
            "dataset": "synth",
            "reward_model": "{work}/out_lf_rm",
            "reward_model_type": "lora",
            "max_new_tokens": 128,
            "output_dir": "{work}/out_lf_ppo",
        },
    ),
}


def count_tokens() -> dict:
    """Wrap ``transformers.Trainer.training_step`` to add up each micro-batch's attention mask; returns the
    holder whose ``"total"`` is the running count (a tensor on the batch's device)."""
    import transformers

    holder: dict = {"total": None}
    original = transformers.Trainer.training_step

    def training_step(self, model, inputs, *args, **kwargs):
        mask = inputs.get("attention_mask") if hasattr(inputs, "get") else None
        if mask is not None:
            count = mask.sum()
            holder["total"] = count if holder["total"] is None else holder["total"] + count
        return original(self, model, inputs, *args, **kwargs)

    transformers.Trainer.training_step = training_step
    return holder


def main() -> None:
    argv = sys.argv[1:]
    length = None
    if "--long" in argv:  # one row of exactly N tokens per step (long_rows.py)
        at = argv.index("--long")
        length = int(argv[at + 1])
        del argv[at : at + 2]
    lf_bench, work, mode = argv[0], Path(argv[1]), argv[2]
    steps = argv[3] if len(argv) > 3 else "30"
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    lf_mode, options = MODES[mode]
    extra = {
        key: value.format(work=work) if isinstance(value, str) else value for key, value in options.items()
    }
    if length:
        extra.update(long_options(work, length))
    if extra:
        import llamafactory.train.tuner as tuner

        original = tuner.run_exp

        def with_extra(args=None, callbacks=None):
            return original({**args, **extra}, callbacks)

        tuner.run_exp = with_extra
    tokens = count_tokens()
    sys.argv = [lf_bench, str(work), lf_mode, steps]
    runpy.run_path(lf_bench, run_name="__main__")

    import torch

    results_file = Path(extra.get("output_dir", work / f"out_{lf_mode}")) / "train_results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    measured = int(tokens["total"].item()) if tokens["total"] is not None else None
    runtime = results.get("train_runtime")
    rate = round(measured / runtime, 2) if measured and runtime else None
    flops = workload_flops(work, length or 2048)
    cuda = torch.cuda.is_available()
    peak = peak_tflops(torch.cuda.get_device_name() if cuda else None)
    result = {
        "system": "LLaMA-Factory",
        "mode": mode,
        "steps": int(steps),
        "long_context": length,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "peak_alloc_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_reserved_GiB": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
        "measured_tokens": measured,
        "measured_tokens_per_sec": rate,
        "mfu": mfu(rate, flops["flops_per_token"], peak),
        "peak_tflops": peak,
        **flops,
        **results,
    }
    print("RESULT", json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
