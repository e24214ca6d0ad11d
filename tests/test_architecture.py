"""The layering holds: import-linter contracts (layers in core, no cycles, plugins -> public API only) pass, and
every plugin package of the repository is under the plugin contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _packages_of(folder: str) -> set[str]:
    return {
        package.name
        for dist in (ROOT / folder).iterdir()
        if (dist / "pyproject.toml").is_file()
        for package in dist.iterdir()
        if (package / "__init__.py").is_file()
    }


def test_every_plugin_package_is_bound_to_the_public_api() -> None:
    config = _contracts()
    plugin_contract = next(c for c in config["contracts"] if c["id"] == "plugins-public-api")
    packages = _packages_of("plugins") | _packages_of("contrib_templates")
    assert packages <= set(config["root_packages"]), "add new plugin packages to root_packages"
    assert packages <= set(plugin_contract["source_modules"]), "add new plugin packages to the contract"
    assert {"ft_core.engine", "ft_core.cli", "ft_core.testing"} <= set(plugin_contract["forbidden_modules"])


def test_every_engine_module_sits_in_an_engine_layer() -> None:
    """A new module of ft_core.engine cannot escape the layering: the engine-layers contract names every one."""
    engine = ROOT / "core" / "src" / "ft_core" / "engine"
    modules = {p.stem for p in engine.glob("*.py") if p.name != "__init__.py"}
    modules |= {p.name for p in engine.iterdir() if (p / "__init__.py").is_file()}
    contract = next(c for c in _contracts()["contracts"] if c["id"] == "engine-layers")
    assert contract["containers"] == ["ft_core.engine"]
    layered = {
        name.strip().strip("()")
        for layer in contract["layers"]
        for name in layer.replace(":", "|").split("|")
        if name.strip()
    }
    assert modules - layered == set(), "add these engine modules to a layer of the engine-layers contract"
    assert layered - modules == set(), "the engine-layers contract names modules that do not exist"


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
