"""Resolve what ``ft-core chat`` talks to: a trained run folder or a plain model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.api.errors import FtCoreError
from ft_core.api.inference import ChatTarget
from ft_core.engine.run import output

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.engine.plugins import Plugins

#: Folder names that people give their output folders: ``runs/x`` is a missing local folder, not a hub id.
_LOCAL_FOLDER_NAMES = frozenset(
    {"run", "runs", "output", "outputs", "out", "saves", "save", "checkpoints", "models", "model", "tmp"}
)
_UNFINISHED = {
    "running": "is still running (or its process was killed before it could record that)",
    "interrupted": "was interrupted",
    "failed": "failed",
    "cancelled": "was cancelled",
}


def _accepted() -> str:
    from ft_core.engine.models.embedded import EMBEDDED_ALIAS

    return (
        "give a run folder written by `ft-core run` (it holds manifest.json), a Hugging Face model folder "
        f"(with config.json), a .gguf file, or the embedded model {EMBEDDED_ALIAS}"
    )


def _could_be_hub_id(reference: str) -> bool:
    """A bare ``org/name`` whose ``org`` is not a local folder nor a usual output-folder name."""
    if reference.count("/") != 1 or reference.startswith((".", "/", "~")) or "\\" in reference:
        return False
    org, name = reference.split("/")
    if not org or not name or Path(org).exists() or org.lower() in _LOCAL_FOLDER_NAMES:
        return False
    return Path(name).suffix.lower() not in {".gguf", ".json", ".yaml", ".yml", ".safetensors", ".bin"}


def _missing(reference: str) -> FtCoreError:
    message = (
        f"no such run folder or model: {reference} (relative paths start from {Path.cwd()}); {_accepted()}"
    )
    if _could_be_hub_id(reference):
        message += (
            f". If {reference!r} is a Hugging Face hub id: ft-core works offline and downloads nothing; "
            f"download it yourself (`hf download {reference} --local-dir DIR`) and give DIR"
        )
    return FtCoreError(message)


def _unfinished(folder: Path, status: Any) -> FtCoreError:
    what = _UNFINISHED.get(str(status), f"has status {status!r}")
    config = folder / output.RESOLVED_CONFIG
    resume = (
        f"`ft-core run {config}` (it continues from the newest checkpoint)"
        if config.is_file()
        else "`ft-core run` with the run's config (it continues from the newest checkpoint in the folder)"
    )
    wait = (
        "wait for it to finish, or if it is no longer running, resume it with " if status == "running" else ""
    )
    return FtCoreError(
        f"{folder}: the run has not finished: it {what}, so it has no trained model to chat with yet; "
        f"{wait or 'resume it with '}{resume}, then chat with {folder}"
    )


def _load_pretrained(path: str, dtype: Any, rope: tuple[dict[str, Any], int] | None = None) -> Any:
    """The model at ``path``; ``rope``: the run's ``(model.rope_scaling, data.cutoff_len)`` to apply first."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if not rope:
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    from ft_core.engine.models.loader import apply_rope_scaling

    config = AutoConfig.from_pretrained(path)
    apply_rope_scaling(config, *rope)
    return AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype)


def _run_rope_scaling(folder: Path) -> tuple[dict[str, Any], int] | None:
    """The run's ``model.rope_scaling`` (normalised) and ``data.cutoff_len``, from its saved config; ``None``
    without scaling. The base model of an adapter run needs the same scaling it was trained with."""
    import yaml

    from ft_core.api.config import DataSection, normalize_rope_scaling

    path = folder / output.RESOLVED_CONFIG
    raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    rope_scaling = (raw.get("model") or {}).get("rope_scaling")
    if not rope_scaling:
        return None
    cutoff_len = (raw.get("data") or {}).get("cutoff_len") or DataSection.cutoff_len
    return normalize_rope_scaling(rope_scaling), int(cutoff_len)


def _run_target(folder: Path, plugins: Plugins) -> ChatTarget:
    manifest = output.read_manifest(folder)
    status = manifest.get("status")
    if status != "completed":
        raise _unfinished(folder, status)
    artefact = folder / manifest.get("artefact", output.ARTEFACT_DIR)
    if not artefact.is_dir():
        raise FtCoreError(f"{folder}: the run is marked completed but its model folder {artefact} is missing")
    adapter_name = next(
        (c["name"] for c in manifest.get("components", []) if c.get("section") == "adapter"), None
    )
    if adapter_name is None:
        raise FtCoreError(f"{folder / output.MANIFEST}: names no adapter method")
    adapter = plugins.get("adapter", adapter_name)
    base = manifest["base_model"]["path"]
    template = manifest.get("template", {})
    rope = _run_rope_scaling(folder)
    return ChatTarget(
        description=f"{folder} ({adapter_name} on {manifest['base_model']['name_or_path']})",
        tokenizer_path=str(artefact),
        load_model=lambda dtype: adapter.load_for_inference(
            str(artefact), lambda: _load_pretrained(base, dtype, rope)
        ),
        stop_words=list(template.get("stop_words", [])),
        system=template.get("system"),
        template_kwargs=dict(template.get("template_kwargs") or {}),
        template=template.get("name"),
    )


def resolve_chat_target(path: str, plugins: Plugins) -> ChatTarget:
    """A run folder (base + adapter, using the run's chat template) or a model reference (a Hugging Face
    folder, a ``.gguf`` file or the embedded alias)."""
    from ft_core.engine.models.embedded import is_embedded_alias, resolve_model_path

    if not is_embedded_alias(path):
        folder = Path(path).expanduser()
        if not folder.exists():
            raise _missing(path)
        if folder.is_dir():
            if (folder / output.MANIFEST).is_file():
                return _run_target(folder, plugins)
            if not (folder / "config.json").is_file():
                checkpoints = output.latest_checkpoint(folder) is not None
                hint = (
                    " It holds checkpoints but no manifest.json: a run that has not finished; resume it with "
                    "`ft-core run` and its config."
                    if checkpoints
                    else ""
                )
                raise FtCoreError(
                    f"{path} is neither a run folder (no manifest.json) nor a Hugging Face model folder "
                    f"(no config.json); {_accepted()}.{hint}"
                )
    resolved = resolve_model_path(path, None)
    return ChatTarget(
        description=path, tokenizer_path=resolved, load_model=lambda dtype: _load_pretrained(resolved, dtype)
    )
