"""The ft-core command line as a user runs it: speed of the fast paths, exit codes, readable errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

FT_CORE = str(Path(sys.executable).parent / "ft-core")
ROOT = Path(__file__).resolve().parents[1]
#: Every distribution of this repository (core, plugins, contrib templates): all must load.
FIRST_PARTY = {"ft-core"} | {
    re.search(r'^name = "([^"]+)"', path.read_text(), re.MULTILINE).group(1)
    for path in [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("contrib_templates/*/pyproject.toml")]
}


def ft_core(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FT_CORE, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("args", [("--help",), ("plugins",)])
def test_fast_paths_stay_fast_and_import_no_torch(args):
    ft_core(*args)  # warm the file cache
    started = time.perf_counter()
    result = ft_core(*args)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 1.0, f"`ft-core {' '.join(args)}` took {elapsed:.2f} s"
    probe = "import sys; from ft_core.cli import main; main(['plugins']); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def test_plugins_json_lists_every_first_party_distribution():
    data = json.loads(ft_core("plugins", "--json").stdout)
    loaded = {p["distribution"] for p in data["plugins"] if p["status"] == "loaded"}
    assert loaded >= FIRST_PARTY
    assert (
        data["components"]["adapter"].items()
        >= {
            "freeze": "ft-core-freeze",
            "full": "ft-core-full",
            "lora": "ft-core-lora",
        }.items()
    )
    assert data["components"]["chat_template"]["zephyr"] == "ft-template-zephyr"


def test_validate_reports_problems_without_a_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(
        "model:\n  name_or_path: /nowhere\ndata:\n  dataset: identity\n  cutof_len: 5\nadapter: lorra\n"
    )
    result = ft_core("validate", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "data.cutof_len: unknown key. Did you mean 'cutoff_len'?" in result.stderr
    assert "Did you mean 'lora'?" in result.stderr
    assert "training.output_dir: required" in result.stderr


def test_a_bad_row_stops_the_run_before_the_model_loads(tmp_path, tiny_model_dir):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.jsonl"}}))
    (data / "mine.jsonl").write_text('{"instruction": "hi", "output": "hello"}\n{"instruction": "hi"}\n')
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model:\n  name_or_path: {tiny_model_dir}\ndata:\n  dataset: mine\n  dataset_dir: {data}\n"
        f"  cache_dir: {tmp_path / 'cache'}\ntraining:\n  output_dir: {tmp_path / 'run'}\n  use_cpu: true\n"
    )
    result = ft_core("run", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "mine.jsonl: row 2: output" in result.stderr
    assert "Loading weights" not in result.stderr, "the model must not load before the data is checked"
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_a_template_that_differs_from_the_tokenizers_stops_with_a_diff(tmp_path, tiny_model_dir):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model:\n  name_or_path: {tiny_model_dir}\ntemplate: llama3\ndata:\n  dataset: identity\n"
        f"  cache_dir: {tmp_path / 'cache'}\ntraining:\n  output_dir: {tmp_path / 'run'}\n  use_cpu: true\n"
    )
    result = ft_core("run", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "llama3" in result.stderr and "template: auto" in result.stderr
    assert "Loading weights" not in result.stderr


def test_output_piped_into_a_reader_that_closes_early_ends_quietly():
    # `true` exits before ft-core writes (start-up takes ~0.15 s), so every write hits a closed pipe.
    result = subprocess.run(f"'{FT_CORE}' plugins | true", shell=True, capture_output=True, text=True)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
