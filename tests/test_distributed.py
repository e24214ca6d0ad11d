"""Multi-process runs: a 2-process ``torchrun`` (gloo, CPU) LoRA SFT matches a 1-process run with the same global
batch, and only rank 0 writes outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ft_core.engine.killpoints import KILL_ENV

TORCHRUN = Path(sys.executable).parent / "torchrun"


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_two_processes_train_like_one_with_the_same_global_batch(make_config, tmp_path):
    common = {"max_steps": 4, "learning_rate": 5e-3, "logging_steps": 1, "seed": 7}
    data = {"cache_dir": str(tmp_path / "cache-one")}
    one = make_config(
        "one.yaml",
        data=data,
        training={**common, "per_device_train_batch_size": 2, "output_dir": str(tmp_path / "one")},
    )
    two = make_config(
        "two.yaml",
        data={"cache_dir": str(tmp_path / "cache-two")},
        training={**common, "per_device_train_batch_size": 1, "output_dir": str(tmp_path / "two")},
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    single = subprocess.run(
        [sys.executable, "-m", "ft_core.cli", "run", str(one)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [
            str(TORCHRUN),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "-m",
            "ft_core.cli",
            "run",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 4
    assert b == pytest.approx(a, rel=2e-3), f"1 process {a} vs 2 processes {b}"
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert len(list((tmp_path / "cache-two").iterdir())) == 1, "the data was prepared once"
    assert double.stderr.count("[ft-core] chat template") == 1, "only rank 0 reports"
    assert double.stderr.count("lora: trainable params") == 1
    assert double.stdout.count("step 1/4") == 1
    assert "destroy_process_group" not in double.stderr


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_nproc_relaunches_through_torchrun_and_a_killed_run_resumes(make_config, tmp_path):
    """``distributed.nproc: 2`` runs DDP on 2 gloo processes; rank 1 is killed (SIGKILL) while the second checkpoint
    is written — rank 0 has written its files, rank 1 its RNG state, nobody marked it complete; running the config
    again skips that checkpoint, resumes the whole run from the first one and trains as a 1-process run with the
    same global batch does."""
    common = {
        "max_steps": 200,
        "save_steps": 5,
        "learning_rate": 5e-3,
        "lr_scheduler_type": "constant",  # the resumed run stops earlier (max_steps 12): the same rates
        "logging_steps": 1,
        "seed": 7,
    }
    one = make_config(
        "one.yaml",
        data={"cache_dir": str(tmp_path / "cache-one")},
        training={
            **common,
            "max_steps": 12,
            "per_device_train_batch_size": 2,
            "output_dir": str(tmp_path / "one"),
        },
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    single = subprocess.run(
        [sys.executable, "-m", "ft_core.cli", "run", str(one)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    expected = {r["step"]: r["loss"] for r in _records(tmp_path / "one") if "loss" in r}

    two = make_config(
        "two.yaml",
        data={"cache_dir": str(tmp_path / "cache-two")},
        training={**common, "per_device_train_batch_size": 1, "output_dir": str(tmp_path / "two")},
        distributed={"nproc": 2},
    )
    command = [sys.executable, "-m", "ft_core.cli", "run", str(two)]
    killed = subprocess.run(
        command, env={**env, KILL_ENV: "checkpoint.saved:2@1"}, capture_output=True, text=True, timeout=300
    )
    assert "distributed.nproc: 2 processes through torchrun" in killed.stderr
    assert killed.returncode != 0, "killing a rank fails the run"
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["status"] != "completed"
    assert (tmp_path / "two" / "checkpoint-10" / "rng_state_1.pth").is_file(), (
        "killed while saving checkpoint-10"
    )

    resumed = subprocess.run(
        [*command, "training.max_steps=12"], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipping checkpoint-10: incomplete" in resumed.stderr
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed_from"].endswith("checkpoint-5"), manifest
    assert manifest["decisions"]["strategy"]["value"] == "ddp"
    start = int(Path(manifest["resumed_from"]).name.split("-")[1])
    after = [r for r in _records(tmp_path / "two") if "loss" in r and r["step"] > start]
    assert start < 12 and after and after[-1]["step"] == 12, (start, after)
    for record in after:
        assert record["loss"] == pytest.approx(expected[record["step"]], rel=2e-3), record["step"]


# ------------------------------------------------------------------------------------------- the distributed section
def _config(make_config, **sections):
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate

    return load_and_validate(str(make_config(**sections)), [], load_plugins())


def test_strategies_and_nproc_are_validated(make_config):
    from ft_core.api.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        _config(make_config, distributed={"strategy": "megatron", "nproc": 0})
    text = str(error.value)
    assert "distributed.strategy: 'megatron' is not an installed strategy; known: auto, ddp" in text
    assert "distributed.nproc: must be >= 1 or auto, got 0" in text


def test_the_plan_records_the_strategy(make_config):
    from ft_core.engine.run.plan import strategy_decision

    config = _config(make_config)
    assert strategy_decision(config, 1).value == "none"
    assert strategy_decision(config, 4).value == "ddp"
    assert "4 processes" in strategy_decision(config, 4).reason


def test_nproc_relaunches_only_outside_a_launcher(make_config, monkeypatch):
    from ft_core.engine.run import launch

    config = _config(make_config, distributed={"nproc": "auto"})
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launch.local_processes(config) == 1, "auto is one process on the CPU"
    assert launch.relaunch(config, ["run", "x.yaml"]) is None
    two = _config(make_config, distributed={"nproc": 2})
    started = []
    monkeypatch.setattr(launch.subprocess, "run", lambda command, **kw: started.append(command) or _Done())
    assert launch.relaunch(two, ["-q", "run", "x.yaml", "training.max_steps=1"]) == 0
    assert started[0][1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    assert started[0][7:] == ["ft_core.cli", "-q", "run", "x.yaml", "training.max_steps=1"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launch.relaunch(two, ["run", "x.yaml"]) is None, "a launcher decides the processes"


class _Done:
    returncode = 0
