"""ft-core-ray: the ``ray-run`` command is registered import-light, checks its options, and (with ray installed) a
local Ray cluster of 2 CPU workers trains like one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ft_core_ray
from ft_core.testing.import_light import check_import_light


def test_registration_is_import_light():
    check_import_light("ft_core_ray")


def test_registers_the_ray_run_command(make_plugins):
    assert "ray-run" in make_plugins(ft_core_ray).names("cli_command")


def test_options_are_checked():
    import argparse

    from ft_core_ray.command import RayRunCommand

    parser = argparse.ArgumentParser()
    RayRunCommand().add_arguments(parser)
    args = parser.parse_args(
        ["c.yaml", "training.max_steps=2", "--workers", "4", "--resources", '{"CPU": 2}']
    )
    assert args.workers == 4 and args.resources == {"CPU": 2.0} and args.overrides == ["training.max_steps=2"]
    for bad in (["c.yaml", "--workers", "0"], ["c.yaml", "--resources", '{"CPU": -1}']):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def test_two_ray_workers_train_like_one_process(make_config, tmp_path):
    pytest.importorskip("ray.train")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "RAY_USAGE_STATS_ENABLED": "0"}
    common = {"max_steps": 3, "learning_rate": 5e-3, "logging_steps": 1, "seed": 7}
    one = make_config(
        "one.yaml",
        data={"cache_dir": str(tmp_path / "cache-one")},
        training={**common, "per_device_train_batch_size": 2, "output_dir": str(tmp_path / "one")},
    )
    two = make_config(
        "two.yaml",
        data={"cache_dir": str(tmp_path / "cache-two")},
        training={**common, "per_device_train_batch_size": 1, "output_dir": str(tmp_path / "two")},
    )
    cli = [sys.executable, "-m", "ft_core.cli"]
    single = subprocess.run([*cli, "run", str(one)], env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    ray_run = subprocess.run(
        [*cli, "ray-run", str(two), "--workers", "2", "--storage", str(tmp_path / "ray")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ray_run.returncode == 0, (ray_run.stdout + ray_run.stderr)[-4000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 3
    assert b == pytest.approx(a, rel=2e-3), f"1 process {a} vs 2 Ray workers {b}"
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["decisions"]["strategy"]["value"] == "ddp"
