"""CI runs what README says: `.ci/run` is README's test command, `.ci/check` runs every check in order and fails
when one fails, and the pre-commit hooks run the same static checks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Run the checks and the tests", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = _readme_test_command()
    assert command == "bash .ci/setup && bash .ci/check"
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1] == command


def test_check_runs_every_step_in_order_and_fails_when_one_fails() -> None:
    script = (ROOT / ".ci" / "check").read_text(encoding="utf-8")
    steps = ['ruff" check .', 'ruff" format --check .', 'mypy"', 'lint-imports"', "-m pytest -q -n"]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions), "ruff check, ruff format, mypy, lint-imports, then pytest"
    assert "set -e" not in script.replace("set -uo pipefail", ""), (
        "every step runs; the script fails at the end"
    )
    assert 'failed+=("$name")' in script and "exit 1" in script


def test_setup_installs_the_tools_of_the_checks() -> None:
    setup = (ROOT / ".ci" / "setup").read_text(encoding="utf-8")
    for tool in ("pytest-xdist", "mypy", "ruff", "import-linter", "pre-commit"):
        assert f" {tool} " in setup or f" {tool}\n" in setup, tool


def test_pre_commit_runs_the_static_checks_with_the_venvs_tools() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert set(hooks) == {"ruff", "ruff-format", "mypy", "lint-imports"}
    for hook in hooks.values():
        assert hook["language"] == "system" and hook["entry"].startswith(".venv/bin/")
