"""ft-core on the reference throughput workload (../shared/bench): SFT, Llama-3-8B shape, 30 steps.

Usage (on the GPU machine, after ``make_synth.py WORK 8b 2000``):
    python tools/bench/bench_sft.py WORK MODE [steps] [--profile [--profile-steps N]] [--peak-tflops T]
    python tools/bench/bench_sft.py --tiny WORK MODE [steps]    # CPU smoke run: tiny random model, same fields

Modes (``--list`` prints them): the LLaMA-Factory-equivalent settings pinned (SDPA attention, gradient
checkpointing on, no packing, no automatic Liger) — ``lora``, ``lora_liger``, ``qlora4``; ft-core's own defaults
(packing, Liger, attention and checkpointing all ``auto``) — ``lora_fast``, ``qlora4_fast``; Unsloth
(ft-core-unsloth, needs unsloth installed) — ``lora_unsloth``, ``qlora4_unsloth``, ``lora_unsloth_packed``.

Prints ``RESULT {...}``: effective tokens/s (non-padding tokens trained / train runtime, counted as LLaMA-Factory's
``lf_bench.py`` counts them), peak allocated / reserved memory, model-FLOPs utilisation (``bench_flops.py``: the
standard 6N + attention formula, also for LoRA), the data loader's wait (``data_wait_s``) when the run reports it,
and the versions. ``--profile`` runs the torch profiler over a few steps after a warm-up and prints the top-20
operators by self CUDA time (CPU time on a CPU run); its RESULT is marked ``profiled`` (not a throughput figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flops import mfu, peak_tflops, workload_flops
from long_rows import add_long_dataset

QLORA4 = {"quantization": {"method": "bitsandbytes", "bits": 4, "quant_type": "nf4", "double_quant": True}}
#: What LLaMA-Factory's lf_bench.py does, pinned against ft-core's ``auto`` defaults.
LF_EQUIVALENT = {
    "model": {"attn_implementation": "sdpa"},
    "data": {"packing": False},
    "training": {"gradient_checkpointing": True},
    "liger": {"enabled": False},
}
UNSLOTH = {
    "unsloth": {"enabled": True},
    "liger": {"enabled": False},
    "adapter": {"method": "unsloth_lora"},
    "data": {"packing": False},
    "training": {"gradient_checkpointing": True},
}


@dataclasses.dataclass(frozen=True)
class Mode:
    """A benchmark mode: config sections merged over the base config, and LLaMA-Factory's mode to compare with
    (``None``: LLaMA-Factory has no such stage)."""

    sections: dict[str, Any]
    baseline: str | None
    description: str


#: The workload's rows as preference pairs (each answer chosen over the next row's), for the preference modes.
PREFERENCE_DATASET = "synth_pref"
#: The workload's rows with a KTO tag (desirable and undesirable in turn), for the kto mode.
KTO_DATASET = "synth_kto"
DPO: dict[str, Any] = {"stage": {"name": "dpo", "beta": 0.1}}
#: LLaMA-Factory's online-RL generation settings on the workload: 128 new tokens a prompt, sampling at temperature 1.
RL_NEW_TOKENS = 128


def _stage(stage: dict[str, Any], dataset: str = PREFERENCE_DATASET) -> dict[str, Any]:
    """A stage mode's sections: the stage over ``dataset``, LoRA and ft-core's defaults otherwise."""
    return {"stage": stage, "data": {"dataset": [dataset]}}


#: The frozen base's linear layers in FP8 (ft-core-torchao): FP8 matmuls forward, half the weight memory.
FP8: dict[str, Any] = {"quantization": {"method": "torchao", "scheme": "float8_dynamic"}}

#: LLaMA-Factory's ``pure_bf16`` (its GaLore and APOLLO examples set it): bf16 weights that train in bf16.
PURE_BF16: dict[str, Any] = {
    "model": {**LF_EQUIVALENT["model"], "dtype": "bfloat16"},
    "training": {**LF_EQUIVALENT["training"], "upcast_trainable": False},
}

MODES: dict[str, Mode] = {
    "lora": Mode(LF_EQUIVALENT, "lora", "LoRA bf16, LLaMA-Factory's settings"),
    "lora_liger": Mode({**LF_EQUIVALENT, "patches": ["liger"]}, "lora_liger", "LoRA bf16 + Liger kernels"),
    "qlora4": Mode({**LF_EQUIVALENT, **QLORA4}, "qlora4", "QLoRA 4-bit NF4, LLaMA-Factory's settings"),
    "lora_fast": Mode(
        {}, "lora", "LoRA bf16, ft-core's defaults (packing, Liger, attention, checkpointing auto)"
    ),
    "qlora4_fast": Mode(QLORA4, "qlora4", "QLoRA 4-bit NF4, ft-core's defaults"),
    "lora_fast_ckpt": Mode(
        {"training": {"gradient_checkpointing": True}},
        "lora",
        "LoRA bf16, ft-core's defaults, checkpointing on",
    ),
    "lora_fast_offload": Mode(
        {"training": {"gradient_checkpointing": "offload"}},
        "lora",
        "LoRA bf16, ft-core's defaults, checkpointing on with the layer inputs offloaded to CPU memory",
    ),
    "lora_budget": Mode(
        {"training": {"memory_budget": 17.5}},
        "lora",
        "LoRA bf16, ft-core's defaults within a memory budget of 17.5 GiB (0.6x LLaMA-Factory's LoRA peak, 29.16 GiB)",
    ),
    "lora_fast_ckpt_split": Mode(
        {"training": {"gradient_checkpointing": True}, "data": {"packing_merge_accumulation": False}},
        "lora",
        "LoRA bf16, ft-core's defaults, checkpointing on, accumulation steps not merged (less memory)",
    ),
    "lora_fp8": Mode(FP8, "lora", "LoRA on an FP8 base (torchao float8_dynamic), ft-core's defaults"),
    "lora_fp8_ckpt": Mode(
        {**FP8, "training": {"gradient_checkpointing": True}},
        "lora",
        "LoRA on an FP8 base (torchao float8_dynamic), ft-core's defaults, checkpointing on",
    ),
    "lora_fp8fb_ckpt": Mode(
        {
            "quantization": {**FP8["quantization"], "fp8_backward": True},
            "training": {"gradient_checkpointing": True},
        },
        "lora",
        "LoRA on an FP8 base, FP8 matmuls backward too (fp8_backward), ft-core's defaults, checkpointing on",
    ),
    "qlora4_fast_ckpt": Mode(
        {**QLORA4, "training": {"gradient_checkpointing": True}},
        "qlora4",
        "QLoRA 4-bit NF4, ft-core's defaults, checkpointing on",
    ),
    # compared with LLaMA-Factory's own use_unsloth (the lf_bench_modes.py mode of the same name)
    "lora_unsloth": Mode(UNSLOTH, "lora_unsloth", "LoRA bf16 through Unsloth (ft-core-unsloth)"),
    "qlora4_unsloth": Mode(
        {**UNSLOTH, **QLORA4}, "qlora4_unsloth", "QLoRA 4-bit through Unsloth (ft-core-unsloth)"
    ),
    "lora_unsloth_packed": Mode(
        {**UNSLOTH, "data": {"packing": True}},
        "lora_unsloth",
        "LoRA bf16 through Unsloth, padding-free packing",
    ),
    # The memory table (docs/performance.md): each way to fit the workload, at LLaMA-Factory's settings otherwise.
    "mem_qlora8": Mode(
        {**LF_EQUIVALENT, "quantization": {"method": "bitsandbytes", "bits": 8}},
        "qlora4",
        "QLoRA 8-bit (bitsandbytes LLM.int8), LLaMA-Factory's settings",
    ),
    "mem_hqq4": Mode(
        {**LF_EQUIVALENT, "quantization": {"method": "hqq", "bits": 4, "group_size": 64}},
        "qlora4",
        "LoRA on an HQQ 4-bit base (group 64), LLaMA-Factory's settings",
    ),
    "mem_hqq2": Mode(
        {**LF_EQUIVALENT, "quantization": {"method": "hqq", "bits": 2, "group_size": 16}},
        "qlora4",
        "LoRA on an HQQ 2-bit base (group 16), LLaMA-Factory's settings",
    ),
    "mem_freeze": Mode(
        {**LF_EQUIVALENT, "adapter": {"method": "freeze", "trainable_layers": 2}},
        "freeze",
        "Freeze: the last 2 decoder layers trained in full, LLaMA-Factory's settings",
    ),
    "mem_galore": Mode(
        {
            **LF_EQUIVALENT,
            **PURE_BF16,
            "adapter": "full",
            "optimizer": {"name": "galore", "rank": 16, "layerwise": True, "svd": "randomized"},
            # layer-wise GaLore steps inside the backward pass (no accumulation): the same 8 rows a step as 8 x 1
            "training": {
                **PURE_BF16["training"],
                "per_device_train_batch_size": 8,
                "gradient_accumulation_steps": 1,
            },
        },
        "galore",
        "Full fine-tuning with layer-wise GaLore (rank 16, randomized SVD, batch 8 x 1, pure bf16 as LLaMA-Factory's"
        " example)",
    ),
    "mem_badam": Mode(
        {
            **LF_EQUIVALENT,
            "adapter": "full",
            "optimizer": {"name": "badam", "mode": "layer", "switch_every": 5},
        },
        "badam",
        "Full fine-tuning with BAdam (one layer at a time), LLaMA-Factory's settings",
    ),
    "mem_apollo": Mode(
        {
            **LF_EQUIVALENT,
            **PURE_BF16,
            "adapter": "full",
            "optimizer": {"name": "apollo", "rank": 1, "scale_type": "tensor"},
        },
        "apollo",
        "Full fine-tuning with APOLLO-Mini (rank 1, pure bf16 as LLaMA-Factory's example)",
    ),
    "mem_full": Mode(
        {**LF_EQUIVALENT, **PURE_BF16, "adapter": "full"},
        "lora",
        "Full fine-tuning with AdamW, pure bf16 (weights, gradients and Adam states in bf16: 8 bytes a parameter)",
    ),
    "dpo_lora": Mode(
        {**DPO, "data": {"dataset": [PREFERENCE_DATASET], "packing": False}},
        "dpo",
        "DPO, LoRA bf16, TRL's padded chosen / rejected batches",
    ),
    "dpo_lora_packed": Mode(
        {**DPO, "data": {"dataset": [PREFERENCE_DATASET], "packing": True}},
        "dpo",
        "DPO, LoRA bf16, each forward pass over TRL's batches padding-free (data.packing: true)",
    ),
    "kto_lora": Mode(
        _stage({"name": "kto", "beta": 0.1}, KTO_DATASET),
        "kto",
        "KTO, LoRA bf16, the workload's rows tagged desirable / undesirable in turn, ft-core's defaults",
    ),
    "rm_lora": Mode(
        _stage({"name": "rm"}),
        "rm",
        "Pairwise reward model, LoRA bf16 (sequence-classification head), ft-core's defaults",
    ),
    "orpo_lora": Mode(
        _stage({"name": "orpo", "beta": 0.1}),
        "orpo",
        "ORPO, LoRA bf16 (reference-free), ft-core's defaults",
    ),
    "simpo_lora": Mode(
        _stage({"name": "simpo"}),
        "simpo",
        "SimPO, LoRA bf16 (reference-free, TRL's CPOTrainer), ft-core's defaults",
    ),
    "ppo_lora": Mode(
        _stage(
            {
                "name": "ppo",
                "reward_model": ["length"],
                "length_target": RL_NEW_TOKENS,
                "max_new_tokens": RL_NEW_TOKENS,
                "ppo_epochs": 4,
                "num_mini_batches": 2,
            },
            "synth",
        )
        # LLaMA-Factory's rollout of 4 x 2 prompts in two mini-batches; ppo steps once per rollout (no accumulation)
        | {"training": {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1}},
        "ppo",
        f"PPO, LoRA bf16 (value head on the policy's weights), {RL_NEW_TOKENS} new tokens a prompt, a length reward",
    ),
    "grpo_lora": Mode(
        _stage(
            {
                "name": "grpo",
                "reward_functions": ["length"],
                "length_target": RL_NEW_TOKENS,
                "num_generations": 4,
                "max_completion_length": RL_NEW_TOKENS,
            },
            "synth",
        ),
        None,
        f"GRPO, LoRA bf16, 4 answers a prompt, {RL_NEW_TOKENS} new tokens each, a length reward (no LLaMA-Factory stage)",
    ),
}


def base_config(work: Path, mode: str, steps: int, tiny: bool) -> dict[str, Any]:
    """The workload's run config: its rows, LoRA r16/alpha 32 on all linear layers, batch 4 x 2, bf16
    (``tiny``: a CPU-sized version of the same, fp32)."""
    return {
        "model": {"name_or_path": str(work / "model")},
        "template": {"name": "default", "check": "off"},
        "data": {
            "dataset": ["synth"],
            "dataset_dir": str(work / "data"),
            "cutoff_len": 128 if tiny else 2048,
            "cache_dir": str(work / "ft-cache"),
        },
        "adapter": {"method": "lora", "rank": 16, "alpha": 32, "targets": "all"},
        "training": {
            "output_dir": str(work / f"ft-out-{mode}"),
            "overwrite_output_dir": True,
            "resume": False,
            "max_steps": steps,
            "per_device_train_batch_size": 2 if tiny else 4,
            "gradient_accumulation_steps": 1 if tiny else 2,
            "learning_rate": 1e-4,
            "lr_scheduler_type": "constant",
            "logging_steps": 5,
            "save_steps": 100000,
            "precision": "fp32" if tiny else "bf16",
            "dataloader_num_workers": 0 if tiny else 2,
            "plot_loss": False,
            **({"use_cpu": True} if tiny else {}),
        },
    }


def _merge(config: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    merged = dict(config)
    for name, value in sections.items():
        base = merged.get(name)
        # another method with options of its own (freeze's trainable_layers) replaces the section; a method alone
        # (unsloth_lora) keeps the base section's options
        other_method = (
            isinstance(value, dict)
            and isinstance(base, dict)
            and value.get("method", base.get("method")) != base.get("method")
            and len(value) > 1
        )
        if isinstance(value, dict) and isinstance(base, dict) and not other_method:
            merged[name] = {**base, **value}
        else:
            merged[name] = value
    return merged


def _supported(config: dict[str, Any], plugins: Any) -> dict[str, Any]:
    """Drop keys this ft-core does not have (pinned settings of newer releases; plugin sections not installed),
    saying so: the same script runs against older and newer trees."""
    from ft_core.api import DataSection, ModelSection, TrainingSection

    schemas = {"model": ModelSection, "data": DataSection, "training": TrainingSection}
    sections = set(plugins.names("config_section"))
    kept: dict[str, Any] = {}
    for name, value in config.items():
        if name in schemas:
            fields = {f.name for f in dataclasses.fields(schemas[name])}
            dropped = sorted(set(value) - fields)
            for key in dropped:
                print(f"bench: {name}.{key} is not a key of this ft-core; left out", file=sys.stderr)
            kept[name] = {k: v for k, v in value.items() if k in fields}
        elif name in ("liger", "unsloth") and name not in sections:
            if name == "unsloth":
                raise SystemExit("bench: the unsloth modes need ft-core-unsloth installed")
            print(f"bench: no {name} section in this ft-core; left out", file=sys.stderr)
        else:
            kept[name] = value
    return kept


def add_stage_datasets(work: Path) -> None:
    """Register the stage modes' data sets in the workload (once): ``PREFERENCE_DATASET``, each row's answer chosen
    over the next row's, and ``KTO_DATASET``, the rows tagged desirable and undesirable in turn. LLaMA-Factory reads
    the same ``dataset_info.json`` entries."""
    data = work / "data"
    info_path = data / "dataset_info.json"
    info = json.loads(info_path.read_text())
    if PREFERENCE_DATASET in info and KTO_DATASET in info:
        return
    rows = json.loads((data / info["synth"]["file_name"]).read_text())
    pairs = [
        {**row, "chosen": row["output"], "rejected": rows[(index + 1) % len(rows)]["output"]}
        for index, row in enumerate(rows)
    ]
    tagged = [{**row, "kto_tag": index % 2 == 0} for index, row in enumerate(rows)]
    (data / f"{PREFERENCE_DATASET}.json").write_text(json.dumps(pairs))
    (data / f"{KTO_DATASET}.json").write_text(json.dumps(tagged))
    prompt = {"prompt": "instruction", "query": "input"}
    info[PREFERENCE_DATASET] = {
        "file_name": f"{PREFERENCE_DATASET}.json",
        "ranking": True,
        "columns": {**prompt, "chosen": "chosen", "rejected": "rejected"},
    }
    info[KTO_DATASET] = {
        "file_name": f"{KTO_DATASET}.json",
        "columns": {**prompt, "response": "output", "kto_tag": "kto_tag"},
    }
    info_path.write_text(json.dumps(info))


def long_config(config: dict[str, Any], work: Path, length: int) -> dict[str, Any]:
    """``config`` training one row of exactly ``length`` tokens per step (``long_rows.py``; no accumulation)."""
    data = {**config["data"], "dataset": [add_long_dataset(work, length)], "cutoff_len": length}
    training = {
        **config["training"],
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "output_dir": str(work / "ft-out-long"),
    }
    return {**config, "data": data, "training": training}


def config_for(work: Path, mode: str, steps: int, tiny: bool = False) -> dict[str, Any]:
    """The run config of ``mode`` (before dropping keys this ft-core lacks)."""
    config = _merge(base_config(work, mode, steps, tiny), MODES[mode].sections)
    if tiny and "unsloth" in config:
        config["unsloth"] = {**config["unsloth"], "allow_cpu": True}
    if tiny and isinstance(config.get("stage"), dict):  # the online-RL modes: answers that fit a tiny row
        short = {"max_new_tokens": 16, "max_completion_length": 16, "length_target": 16, "num_generations": 2}
        config["stage"] = {key: short.get(key, value) for key, value in config["stage"].items()}
    return config


# ------------------------------------------------------------------------------------------------ tiny mode
def build_tiny_workload(work: Path, rows: int = 48) -> None:
    """A CPU-sized stand-in for ``make_synth.py``: a tiny random Llama and alpaca rows with a long-tailed length
    spread (the same fields, so the harness is exercised end to end on a CPU)."""
    from ft_core.testing import save_tiny_model_dir

    if not (work / "model" / "config.json").is_file():
        save_tiny_model_dir(str(work / "model"))
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "sat",
        "on",
        "mat",
        "and",
        "ran",
        "to",
        "house",
        "big",
        "small",
        "red",
        "blue",
        "one",
        "two",
        "three",
    ]
    rng = random.Random(0)
    data = [
        {
            "instruction": " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))),
            "input": "",
            "output": " ".join(
                rng.choice(words) for _ in range(int(min(60, rng.lognormvariate(2.8, 0.7))) + 2)
            ),
        }
        for _ in range(rows)
    ]
    (work / "data").mkdir(parents=True, exist_ok=True)
    (work / "data" / "synth.json").write_text(json.dumps(data))
    (work / "data" / "dataset_info.json").write_text(json.dumps({"synth": {"file_name": "synth.json"}}))


# -------------------------------------------------------------------------------------------------- profiler
def profiler_plugin(start_step: int, steps: int, out_dir: Path, mode: str) -> types.ModuleType:
    """A plugin module whose ``ft_trainer_callbacks`` adds a callback profiling optimizer steps
    ``start_step + 1 .. start_step + steps`` (after a warm-up) and printing the top-20 operators."""
    from transformers import TrainerCallback

    class ProfileSteps(TrainerCallback):
        def __init__(self) -> None:
            self.profiler: Any = None
            self.done = False

        def on_step_begin(self, args, state, control, **kwargs):
            if self.profiler is None and not self.done and state.global_step >= start_step:
                import torch

                activities = [torch.profiler.ProfilerActivity.CPU]
                if torch.cuda.is_available():
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.__enter__()
                self.first = state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            if self.profiler is not None and state.global_step >= self.first + steps:
                self.stop(state.global_step - self.first)

        def on_train_end(self, args, state, control, **kwargs):
            if self.profiler is not None:
                self.stop(state.global_step - self.first)

        def stop(self, profiled: int) -> None:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.profiler.__exit__(None, None, None)
            self.done = True
            events = self.profiler.key_averages()
            tables = []
            for sort in ("self_cuda_time_total", "self_device_time_total", "self_cpu_time_total"):
                if sort.startswith("self_cpu") or (torch.cuda.is_available() and len(tables) == 0):
                    try:
                        tables.append((sort, events.table(sort_by=sort, row_limit=20)))
                    except (AttributeError, KeyError, ValueError):
                        continue
            text = "\n".join(
                f"PROFILE {mode}: top-20 operators by {sort}, {profiled} optimizer steps after step {self.first}"
                f"\n{table}"
                for sort, table in tables
            )
            print(text, flush=True)
            (out_dir / f"profile-{mode}.txt").write_text(text + "\n")
            self.profiler = None

    return callback_plugin("ft_core_bench_profiler", ProfileSteps)


# ------------------------------------------------------------------------------------------------ step stats
def step_stats_plugin(records: list[dict[str, Any]]) -> types.ModuleType:
    """A plugin module whose callback appends, for each optimizer step on a GPU, its GPU time (CUDA events, no
    synchronisation), its tokens and its peak allocated memory to ``records`` (the first entry: the set-up's peak,
    before step 1). Shows where a run's first steps lose time and how peak memory grows with a step's tokens."""
    from transformers import TrainerCallback

    def _peaks() -> dict[str, float]:
        import torch

        return {
            "peak_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "reserved_GiB": round(torch.cuda.max_memory_reserved() / 2**30, 3),
        }

    class StepStats(TrainerCallback):
        def __init__(self) -> None:
            self.events: list[Any] = []
            self.rows: list[dict[str, Any]] = []
            self.tokens = 0

        def _event(self) -> Any:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event

        def on_train_begin(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available():
                records.append({"step": 0, **_peaks()})
                self.events.append(self._event())

        def on_step_begin(self, args, state, control, **kwargs):
            import torch

            if self.events:
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kwargs):

            if self.events:
                seen = state.num_input_tokens_seen
                self.events.append(self._event())
                self.rows.append(
                    {
                        "step": state.global_step,
                        "tokens": seen - self.tokens,
                        **_peaks(),
                    }
                )
                self.tokens = seen

        def on_train_end(self, args, state, control, **kwargs):
            import torch

            if not self.events:
                return
            torch.cuda.synchronize()
            for row, start, end in zip(self.rows, self.events, self.events[1:], strict=False):
                records.append({**row, "ms": round(start.elapsed_time(end), 1)})

    return callback_plugin("ft_core_bench_step_stats", StepStats)


def callback_plugin(name: str, callback_class: type) -> types.ModuleType:
    """A plugin module named ``name`` whose ``ft_trainer_callbacks`` adds a ``callback_class()`` to each trainer."""
    from ft_core.api import hookimpl

    module = types.ModuleType(name)

    @hookimpl
    def ft_trainer_callbacks(run: Any) -> list[Any]:
        return [callback_class()]

    module.ft_trainer_callbacks = ft_trainer_callbacks
    module.ft_activate_by_default = hookimpl(lambda config: f"benchmark harness ({name})")
    return module


# ------------------------------------------------------------------------------------------------------ main
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("ft-core", "torch", "transformers", "peft", "bitsandbytes", "liger-kernel", "unsloth"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="?", help="the workload folder (make_synth.py's OUTDIR)")
    parser.add_argument("mode", nargs="?", choices=sorted(MODES))
    parser.add_argument("steps", nargs="?", type=int, default=30)
    parser.add_argument("--tiny", action="store_true", help="build and run a tiny CPU workload in WORK")
    parser.add_argument("--profile", action="store_true", help="profile a few steps; print the top-20 ops")
    parser.add_argument("--profile-start", type=int, default=3, help="optimizer steps of warm-up before")
    parser.add_argument("--profile-steps", type=int, default=3, help="optimizer steps profiled")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's dense peak (default: H200)"
    )
    parser.add_argument(
        "--long",
        type=int,
        default=None,
        metavar="N",
        help="train one row of exactly N tokens per step instead",
    )
    parser.add_argument("--out", type=Path, default=None, help="where profiles go (default $OUT or WORK)")
    parser.add_argument("--list", action="store_true", help="list the modes and exit")
    args = parser.parse_args(argv)
    if not args.list and (args.work is None or args.mode is None):
        parser.error("WORK and MODE are required")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.list:
        for name, mode in MODES.items():
            print(f"{name:16} vs LLaMA-Factory {mode.baseline or '-':11} {mode.description}")
        return None
    work, mode, steps = args.work, args.mode, args.steps
    if args.tiny:
        build_tiny_workload(work)
    add_stage_datasets(work)
    import torch
    import yaml

    from ft_core.bootstrap import load_plugins
    from ft_core.engine.logs import configure_logging
    from ft_core.engine.run.runner import load_and_validate, run_training

    configure_logging()  # the run's plan lines (checkpointing, attention, packing) go into the log

    out_dir = args.out or Path(os.environ.get("OUT") or work)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps_seen: list[dict[str, Any]] = []
    extra = [(step_stats_plugin(steps_seen), "ft-core-bench-steps")]
    if args.profile:
        extra.append(
            (profiler_plugin(args.profile_start, args.profile_steps, out_dir, mode), "ft-core-bench")
        )
    plugins = load_plugins(strict=not args.tiny, extra=extra)  # a dev tree may hold half-installed plugins
    config = config_for(work, mode, steps, args.tiny)
    if args.long:
        config = long_config(config, work, args.long)
    config = _supported(config, plugins)
    path = work / f"ft-bench-{mode}.yaml"
    path.write_text(yaml.safe_dump(config))
    cuda = torch.cuda.is_available() and not args.tiny
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    run_dir = run_training(load_and_validate(str(path), [], plugins), plugins)
    results = json.loads((run_dir / "train_results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    flops = workload_flops(work, config["data"]["cutoff_len"])
    device = torch.cuda.get_device_name() if cuda else "cpu"
    step_peaks = [row["peak_GiB"] for row in steps_seen]  # each step resets the peak: the run's is their max
    if steps_seen:
        print("STEPS", json.dumps(steps_seen), flush=True)
    peak = peak_tflops(device if cuda else None, args.peak_tflops)
    tokens_per_sec = results.get("effective_tokens_per_sec")
    result = {
        "system": "ft-core",
        "mode": mode,
        "baseline": MODES[mode].baseline,
        "steps": steps,
        "long_context": args.long,
        "profiled": args.profile,
        "device": device,
        "wall_s": round(time.time() - started, 1),
        "peak_alloc_GiB": round(max([torch.cuda.max_memory_allocated() / 2**30, *step_peaks]), 2)
        if cuda
        else None,
        "peak_reserved_GiB": round(
            max([torch.cuda.max_memory_reserved() / 2**30] + [row["reserved_GiB"] for row in steps_seen]), 2
        )
        if cuda
        else None,
        "mfu": mfu(tokens_per_sec, flops["flops_per_token"], peak),
        "peak_tflops": peak,
        **flops,
        "versions": _versions(),
        "gradient_checkpointing": manifest.get("decisions", {})
        .get("gradient_checkpointing", {})
        .get("value"),
        **results,
    }
    print("RESULT", json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
