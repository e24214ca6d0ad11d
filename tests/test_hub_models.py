"""Hub ids as model.name_or_path: resolved through a Hugging Face cache folder (faked here: no network in tests),
with model.revision; offline and not cached, a clear error at validation naming the id and HF_HUB_OFFLINE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ft_core.api.errors import ConfigError
from ft_core.bootstrap import load_plugins
from ft_core.engine.config.loader import load_config
from ft_core.engine.config.validate import validate
from ft_core.engine.models.embedded import check_model_reference, resolve_model_path
from ft_core.engine.run.runner import load_and_validate, run_training

MAIN, TAGGED = "a" * 40, "b" * 40


def fake_cache(root: Path, repo_id: str, model_dir: str) -> Path:
    """A Hugging Face cache holding ``repo_id`` at ``main`` and at the tag ``v1`` (an older snapshot)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    for ref, commit in (("main", MAIN), ("v1", TAGGED)):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        shutil.copytree(model_dir, repo / "snapshots" / commit)
    (repo / "snapshots" / TAGGED / "marker.txt").write_text("v1")
    return root


@pytest.fixture
def hub(tmp_path: Path, tiny_model_dir: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return fake_cache(tmp_path / "hf-cache", "tiny-org/tiny-llama", tiny_model_dir)


def test_a_cached_hub_id_resolves_to_its_snapshot_at_the_revision(hub: Path) -> None:
    folder = Path(resolve_model_path("tiny-org/tiny-llama", hub_cache_dir=str(hub)))
    assert folder.name == MAIN and (folder / "config.json").is_file()
    tagged = Path(resolve_model_path("tiny-org/tiny-llama", revision="v1", hub_cache_dir=str(hub)))
    assert tagged.name == TAGGED and (tagged / "marker.txt").is_file()
    assert check_model_reference("tiny-org/tiny-llama", None, str(hub)) is None
    problem = check_model_reference("tiny-org/tiny-llama", "v2", str(hub))
    assert problem is not None and "(revision v2) is not in the Hugging Face cache" in problem


def test_an_uncached_hub_id_offline_fails_validation_naming_id_and_flag(make_config, hub: Path) -> None:
    path = make_config(model={"name_or_path": "Qwen/Qwen2.5-7B-Instruct", "hub_cache_dir": str(hub)})
    raw, sources = load_config(path)
    with pytest.raises(ConfigError) as caught:
        validate(raw, load_plugins(), sources, str(path))
    text = str(caught.value)
    assert "model.name_or_path: model 'Qwen/Qwen2.5-7B-Instruct' is not in the Hugging Face cache" in text
    assert "HF_HUB_OFFLINE" in text


def test_without_a_network_the_cache_is_used(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not told to stay offline, but the Hub cannot be reached: the cached snapshot is what loads."""
    from ft_core.engine.models import hub as hub_module

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub_module, "offline", lambda: False)

    def unreachable(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", unreachable)
    assert Path(resolve_model_path("tiny-org/tiny-llama", hub_cache_dir=str(hub))).name == MAIN
    problem = check_model_reference("other-org/missing", None, str(hub))
    assert problem is not None and "the Hub cannot be reached (no network)" in problem


def test_a_run_trains_from_a_cached_hub_id(make_config, hub: Path) -> None:
    plugins = load_plugins()
    path = make_config(model={"name_or_path": "tiny-org/tiny-llama", "hub_cache_dir": str(hub)})
    run = run_training(load_and_validate(str(path), [], plugins), plugins)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["base_model"]["name_or_path"] == "tiny-org/tiny-llama"
    assert MAIN in manifest["base_model"]["path"]
