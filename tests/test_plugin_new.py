"""`ft-core plugin new KIND NAME`: one plugin of every kind is generated and its own tests pass as generated; one is
really installed (pip, into a folder of its own), listed by `ft-core plugins`, tested from its installed form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ft_core.api.kinds import KINDS
from ft_core.cli import main
from ft_core.commands.plugin_new import plugin_files


def _pytest(*args: str, cwd: Path, pythonpath: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_kind_has_a_scaffold() -> None:
    for kind in KINDS:
        files = plugin_files(kind.key, "demo")
        assert set(files) == {
            "pyproject.toml",
            "README.md",
            "ci.sh",
            ".gitignore",
            "ft_core_demo/__init__.py",
            "tests/test_ft_core_demo.py",
        }
        assert '[project.entry-points.ft_core]\ndemo = "ft_core_demo"' in files["pyproject.toml"]
        assert kind.hook in files["ft_core_demo/__init__.py"]


def test_bad_kind_and_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["plugin", "new", "chat_templat", "x", "--output", str(tmp_path / "a")]) == 2
    assert "Did you mean 'chat_template'" in capsys.readouterr().err
    assert main(["plugin", "new", "adapter", "Bad-Name", "--output", str(tmp_path / "b")]) == 2
    assert main(["plugin", "new", "loggers", "jsonl", "--output", str(tmp_path / "c")]) == 0  # a section name
    assert (tmp_path / "c" / "ft_core_jsonl" / "__init__.py").exists()


def test_generated_plugins_pass_their_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roots = []
    for kind in KINDS:
        root = tmp_path / kind.key
        assert main(["plugin", "new", kind.key, f"gen_{kind.key}", "--output", str(root)]) == 0
        roots.append(root)
    assert "next: pip install -e" in capsys.readouterr().out
    result = _pytest(*[str(r / "tests") for r in roots], cwd=tmp_path, pythonpath=roots)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(roots)} failed" not in result.stdout


def test_installed_plugin_is_listed_and_tested(tmp_path: Path) -> None:
    """Installed with pip into a folder of its own (the shared environment stays untouched while other tests run)."""
    root, site = tmp_path / "plugin", tmp_path / "site"
    assert main(["plugin", "new", "chat_template", "gen_installed", "--output", str(root)]) == 0
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--target", str(site), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    environment = {**os.environ, "PYTHONPATH": str(site)}

    def listed(env: dict[str, str]) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "ft_core.cli", "plugins", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert result.stdout.startswith("{"), result.stdout[-2000:] + result.stderr[-2000:]
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    data = listed(environment)
    assert data["components"]["chat_template"].get("gen_installed") == "ft-core-gen-installed"
    record = next(p for p in data["plugins"] if p["distribution"] == "ft-core-gen-installed")
    assert record["status"] == "loaded"
    result = _pytest("tests", cwd=root, pythonpath=[site])  # the installed package, not the source folder
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "gen_installed" not in listed(dict(os.environ))["components"]["chat_template"]
