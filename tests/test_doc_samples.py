"""Sample outputs in the docs are what the commands print: every line of a sample (but ``...``) must be a line
a real run prints, once numbers are normalised (each becomes ``N``) and the run's folder is the documented one. A
reworded, removed or reordered-into-another-line message fails here; a different loss or speed does not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
FT_CORE = str(Path(sys.executable).parent / "ft-core")
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def normalise(line: str) -> str:
    return NUMBER.sub("N", line.rstrip())


def doc_sample(doc: str, after: str) -> list[str]:
    """The lines of the first fenced block after the text ``after`` in ``docs/<doc>``."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    assert after in text, f"docs/{doc} no longer says {after!r}: update this test"
    block = re.search(r"```[a-z]*\n(.*?)```", text[text.index(after) :], re.S)
    assert block, f"no sample block after {after!r} in docs/{doc}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_user_guide_run_sample_is_what_ft_core_run_prints(tmp_path):
    sample = doc_sample("user-guide.md", "`ft-core run` prints a console line per logging step")
    run = tmp_path / "quickstart"
    result = subprocess.run(
        [
            FT_CORE,
            "run",
            "configs/quickstart.yaml",
            f"training.output_dir={run}",
            f"data.cache_dir={tmp_path / 'cache'}",  # a fresh cache: the first run preprocesses (and says so)
            "training.num_train_epochs=0.1",  # 2 of 36 steps; not max_steps, which changes the `train:` line
            "training.logging_steps=1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, f"ft-core run failed:\n{result.stdout}\n{result.stderr}"
    # the documented command writes into runs/quickstart; progress bars redraw with carriage returns
    printed = (result.stderr + "\n" + result.stdout).replace(str(run), "runs/quickstart")
    lines = {normalise(part) for line in printed.splitlines() for part in line.split("\r")}
    missing = [line for line in sample if line.strip() != "..." and normalise(line) not in lines]
    assert not missing, (
        "docs/user-guide.md shows lines `ft-core run configs/quickstart.yaml` no longer prints (numbers aside):\n"
        + "\n".join(missing)
        + "\n\nit printed:\n"
        + printed
    )
