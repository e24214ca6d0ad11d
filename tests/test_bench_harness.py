"""The GPU benchmark harness (tools/bench/bench_*.py) on a CPU: a tiny run prints every field the GPU run prints,
the profiler prints its table, the summary pairs ft-core with LLaMA-Factory, and the FLOPs formula holds — so the
harness cannot rot between GPU calls."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "bench"))

import bench_flops
import bench_sft
import bench_table
import lf_bench_modes
import long_rows
import slim_wheel

BENCH_DIR = Path(bench_sft.__file__).parent

LLAMA3_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
}


def test_matmul_parameters_of_the_reference_model():
    # 32 x (q, k, v, o, gate, up, down) + the output head: 6.98 B + 0.53 B
    assert bench_flops.matmul_parameters(LLAMA3_8B) == 32 * (
        2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    ) + (4096 * 128256)
    assert bench_flops.matmul_parameters(LLAMA3_8B) == 7_504_658_432


def test_mfu_and_peak():
    assert bench_flops.peak_tflops("NVIDIA H200") == 989.0
    assert bench_flops.peak_tflops("cpu") is None
    assert bench_flops.peak_tflops(None, 10.0) == 10.0
    # 2,733 tokens/s of 46.3 GFLOP each on a 989 TFLOP/s card: about 12.8 %
    assert bench_flops.mfu(2733, 46.3e9, 989.0) == pytest.approx(0.128, abs=0.001)
    assert bench_flops.mfu(None, 46.3e9, 989.0) is None


def test_every_mode_has_its_baseline_in_the_table():
    assert {name: mode.baseline for name, mode in bench_sft.MODES.items()} == bench_table.BASELINES
    assert set(bench_table.BASELINES.values()) - {None} <= set(lf_bench_modes.MODES)


def test_fast_modes_leave_the_auto_defaults_alone(tmp_path):
    pinned = bench_sft.config_for(tmp_path, "lora", 30)
    fast = bench_sft.config_for(tmp_path, "lora_fast", 30)
    assert pinned["training"]["gradient_checkpointing"] is True and pinned["data"]["packing"] is False
    assert pinned["model"]["attn_implementation"] == "sdpa" and pinned["liger"] == {"enabled": False}
    assert "gradient_checkpointing" not in fast["training"] and "packing" not in fast["data"]
    assert "attn_implementation" not in fast["model"] and "liger" not in fast
    unsloth = bench_sft.config_for(tmp_path, "qlora4_unsloth", 30)
    assert unsloth["adapter"] == {"method": "unsloth_lora", "rank": 16, "alpha": 32, "targets": "all"}
    assert unsloth["unsloth"] == {"enabled": True} and unsloth["quantization"]["bits"] == 4


#: what a CPU machine without the GPU packages cannot validate (each GPU-only mode's problem names one of these)
GPU_ONLY = ("CUDA", "not installed")


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    work = tmp_path_factory.mktemp("workload")
    bench_sft.build_tiny_workload(work)
    bench_sft.add_stage_datasets(work)
    return work


@pytest.mark.parametrize("mode", sorted(bench_sft.MODES))
def test_every_modes_gpu_config_passes_validation(workload, mode):
    # the full-size config each GPU call runs (batch 4 x 2, bf16): a rule it breaks costs a device call otherwise
    from ft_core.api.errors import ConfigError
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate

    plugins = load_plugins(strict=False)
    path = workload / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(bench_sft._supported(bench_sft.config_for(workload, mode, 30), plugins)))
    try:
        load_and_validate(str(path), [], plugins)
    except ConfigError as error:
        assert all(any(word in problem for word in GPU_ONLY) for problem in error.problems), error


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    result = bench_sft.main(["--tiny", str(work), "lora", "2", "--peak-tflops", "1.0"])
    return work, result


def test_a_tiny_run_reports_every_field(tiny_result, capsys):
    work, result = tiny_result
    assert result["system"] == "ft-core" and result["mode"] == "lora" and result["baseline"] == "lora"
    assert result["effective_tokens_per_sec"] > 0 and result["train_runtime"] > 0 and result["train_loss"] > 0
    config = json.loads((work / "model" / "config.json").read_text())
    assert result["matmul_params"] == bench_flops.matmul_parameters(config)
    attention = 12 * config["num_hidden_layers"] * config["hidden_size"] * result["attention_context"]
    assert result["flops_per_token"] == pytest.approx(6 * result["matmul_params"] + attention, rel=1e-3)
    expected = result["effective_tokens_per_sec"] * result["flops_per_token"] / 1e12
    assert result["mfu"] == pytest.approx(expected, abs=1e-4)
    assert "peak_alloc_GiB" in result and result["versions"]["ft-core"]
    assert not result["profiled"]


def test_the_summary_pairs_each_mode_with_llamafactory(tiny_result, tmp_path):
    _, result = tiny_result
    fast = {**result, "mode": "lora_fast", "effective_tokens_per_sec": 2 * result["effective_tokens_per_sec"]}
    lf = {
        "system": "LLaMA-Factory",
        "mode": "lora",
        "train_runtime": 10.0,
        "measured_tokens_per_sec": result["effective_tokens_per_sec"],
        "effective_tokens_per_sec": 1.0,  # LLaMA-Factory's estimate: not used when measured
        "peak_alloc_GiB": 2.0,
        "mfu": 0.1,
    }
    (tmp_path / "ft-lora.log").write_text(f"noise\nRESULT {json.dumps(result)}\n")
    (tmp_path / "ft-lora_fast.log").write_text(f"RESULT {json.dumps(fast)}\n")
    (tmp_path / "lf-lora.log").write_text(f'RESULT {{"mode": "lora"}}\nRESULT {json.dumps(lf)}\n')
    (tmp_path / "ft-lora-profile.log").write_text(f"RESULT {json.dumps({**result, 'profiled': True})}\n")
    results = bench_table.read_results([tmp_path])
    assert len(results) == 3  # lf_bench.py's own line (no system) and the profiled run are left out
    table = bench_table.markdown(results).splitlines()
    assert table[0].startswith("| system | mode | wall | train runtime | tokens/s | peak alloc | MFU |")
    body = [line for line in table[2:] if line.startswith("|")]
    assert [line.split("|")[1:3] for line in body] == [
        [" ft-core ", " lora "],
        [" LLaMA-Factory ", " lora "],
        [" ft-core ", " lora_fast "],
    ]
    assert "| 1.00x |" in body[0] and "| 2.00x |" in body[2]  # tokens/s against the measured LF rate
    assert "10.0%" in body[1]
    assert any(line.startswith("MFU: 6N + 12*L*d*s") for line in table)
    (tmp_path / "ft-qlora4.log").write_text("Traceback ...\nRuntimeError: out of memory\n")
    assert bench_table.without_result([tmp_path]) == [tmp_path / "ft-qlora4.log"]
    assert bench_table.main([str(tmp_path)]) == 0


def test_a_long_context_run_trains_rows_of_exactly_the_length(tiny_result, tmp_path):
    work, _ = tiny_result
    result = bench_sft.main([str(work), "lora", "2", "--tiny", "--long", "48", "--peak-tflops", "1.0"])
    assert result["long_context"] == 48
    assert result["num_input_tokens_seen"] == 2 * 48  # one row of exactly 48 tokens per step, two steps
    assert long_rows.long_options(work, 48) == {
        "dataset": "synth_long_48",
        "cutoff_len": 48,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "output_dir": str(work / "out_lf_long"),
    }
    lf = {"system": "LLaMA-Factory", "mode": "lora", "long_context": 48, "peak_alloc_GiB": 1.0}
    short = {**lf, "long_context": None, "peak_alloc_GiB": 9.0}
    (tmp_path / "long.log").write_text(
        f"RESULT {json.dumps(result)}\nRESULT {json.dumps(lf)}\nRESULT {json.dumps(short)}\n"
    )
    body = bench_table.markdown(bench_table.read_results([tmp_path])).splitlines()[2:4]
    assert [line.split("|")[1:3] for line in body] == [
        [" ft-core ", " lora (one row of 48 tokens) "],
        [" LLaMA-Factory ", " lora (one row of 48 tokens) "],
    ]  # paired with LLaMA-Factory's run of the same length, not its other run


def test_profile_prints_the_top_operators(tmp_path, capsys):
    work = tmp_path / "work"
    options = ["--profile", "--profile-start", "1", "--profile-steps", "2", "--out", str(tmp_path)]
    result = bench_sft.main(["--tiny", str(work), "lora", "4", *options])
    output = capsys.readouterr().out
    assert result["profiled"] is True
    assert "PROFILE lora: top-20 operators by self_cpu_time_total, 2 optimizer steps after step 1" in output
    assert "aten::mm" in output
    assert (tmp_path / "profile-lora.txt").read_text().startswith("PROFILE lora")


def test_slim_wheel_drops_files_and_their_record_lines(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "x = 1\n")
        archive.writestr("studio/big.js", "y" * 1000)
        archive.writestr(
            "pkg-1.0.dist-info/RECORD", "pkg/__init__.py,,\nstudio/big.js,,\npkg-1.0.dist-info/RECORD,,\n"
        )
    assert slim_wheel.slim(wheel, ["studio/*"]) == (2, 1)
    with zipfile.ZipFile(wheel) as archive:
        assert sorted(archive.namelist()) == ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py"]
        assert "studio" not in archive.read("pkg-1.0.dist-info/RECORD").decode()


def test_the_driver_script_parses():
    script = BENCH_DIR / "bench_vs_llamafactory.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
