"""Resolve what ``ft-core chat`` talks to (a trained run folder or a plain model), and load a finished run's trained
model with its head (:func:`load_trained_model`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.api.components import ModelHead
from ft_core.api.errors import FtCoreError
from ft_core.api.inference import ChatTarget, VisionTarget
from ft_core.api.modeling import HEADS_FILE, artefact_head, auto_model_class, configure_head, load_heads
from ft_core.engine.run import output

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.engine.plugins import Plugins

#: Folder names that people give their output folders: ``runs/x`` is a missing local folder, not a hub id.
_LOCAL_FOLDER_NAMES = frozenset(
    {"run", "runs", "output", "outputs", "out", "saves", "save", "checkpoints", "models", "model", "tmp"}
)
_UNFINISHED = {
    "running": "is still running (or its process was killed before it could record that)",
    "interrupted": "was interrupted (stopped at once by a second Ctrl-C, or its process was killed)",
    "failed": "failed",
    "cancelled": "was cancelled",
}


def _accepted() -> str:
    from ft_core.engine.models.embedded import EMBEDDED_ALIAS

    return (
        "give a run folder written by `ft-core run` (it holds manifest.json), a Hugging Face model folder "
        f"(with config.json), a Hub id (org/name), a .gguf file, or the embedded model {EMBEDDED_ALIAS}"
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


def _load_pretrained(
    path: str,
    dtype: Any,
    rope: tuple[dict[str, Any], int] | None = None,
    head: ModelHead = "causal_lm",
    pad_token_id: int | None = None,
    auto_class: Any = None,
    allow_pickle: bool = False,
) -> Any:
    """The model at ``path`` with ``head`` (a classification or value head: one label, ``pad_token_id``);
    ``rope``: the run's ``(model.rope_scaling, data.cutoff_len)`` to apply first; ``auto_class``: the class that
    loads it (a vision family's own class), else the head's auto class. Safetensors only, unless ``allow_pickle``
    (the run's ``model.allow_pickle``)."""
    from transformers import AutoConfig

    from ft_core.engine.models.loader import require_safe_weights

    require_safe_weights(path, allow_pickle)
    auto_class = auto_class or auto_model_class(head)
    if not rope and head == "causal_lm":
        return auto_class.from_pretrained(path, dtype=dtype, use_safetensors=None if allow_pickle else True)
    from ft_core.engine.models.loader import apply_rope_scaling

    config = AutoConfig.from_pretrained(path)
    if rope:
        apply_rope_scaling(config, *rope)
    configure_head(config, head, pad_token_id)
    return auto_class.from_pretrained(
        path, config=config, dtype=dtype, use_safetensors=None if allow_pickle else True
    )


def run_generation(folder: Path) -> dict[str, Any]:
    """The run's ``generation`` section as its saved config holds it (empty when it has none)."""
    import yaml

    path = folder / output.RESOLVED_CONFIG
    raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    generation = raw.get("generation") if isinstance(raw, dict) else None
    return dict(generation) if isinstance(generation, dict) else {}


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


@dataclass(frozen=True)
class _TrainedRun:
    """A finished run: its manifest, artefact folder, adapter method and trained head, and the loader of its trained
    model (``dtype`` -> model: the adapter method's ``load_for_inference``, the base model loaded with that head)."""

    manifest: dict[str, Any]
    artefact: Path
    adapter_name: str
    head: ModelHead
    load: Callable[[Any], Any]
    vision: VisionTarget | None = None


def _vision_family(plugins: Plugins, family_name: str | None, folder: str) -> Any:
    """The registered model family (by name, else by the model's config) when it is a vision-language family."""
    family = None
    if family_name and family_name in plugins.registries["model_family"]:
        family = plugins.get("model_family", family_name)
    elif (Path(folder) / "config.json").is_file():
        from transformers import AutoConfig

        from ft_core.engine.models.loader import resolve_family

        try:
            family = resolve_family(plugins, AutoConfig.from_pretrained(folder))
        except Exception:  # an unreadable or unknown config: a text model as far as chat goes
            family = None
    return family if family is not None and family.vision is not None else None


def _vision_target(
    plugins: Plugins, family: Any, folder: str, template: str | None, derived: bool = False
) -> VisionTarget:
    """How the vision-language model in ``folder`` takes images: its processor and its template's image token
    (the run's template, else the family's default template, as training finds it)."""
    import contextlib
    import json

    names = [template] if template and not derived else []
    if family.default_template:
        names.append(family.default_template)
    image_token = None
    for name in names:
        if name in plugins.registries["chat_template"]:
            image_token = plugins.get("chat_template", name).image_token
            break
    model_type = family.model_types[0]  # picks the processor class well enough without a readable config
    with contextlib.suppress(OSError, ValueError, KeyError):
        model_type = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["model_type"]
    return VisionTarget(processor_path=folder, model_type=model_type, template_image_token=image_token)


def _trained_run(folder: Path, plugins: Plugins) -> _TrainedRun:
    manifest = output.read_manifest(folder)
    status = output.run_status(manifest)
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
    rope = _run_rope_scaling(folder)
    head = artefact_head(artefact)
    pad_token_id = None
    if head != "causal_lm":  # the pad token the classification head was trained with
        from transformers import AutoTokenizer

        pad_token_id = AutoTokenizer.from_pretrained(str(artefact)).pad_token_id

    family = _vision_family(plugins, (manifest.get("model_family") or {}).get("name"), base)
    vision = None
    auto_class = None
    if family is not None and head == "causal_lm":
        from ft_core.engine.vision.model import model_class

        template = manifest.get("template") or {}
        vision = _vision_target(
            plugins, family, base, template.get("name"), bool(template.get("derived_from_tokenizer"))
        )
        auto_class = model_class(family, None)

    rows = int((manifest.get("vocabulary") or {}).get("embedding_rows") or 0)
    merged = list(manifest.get("base_adapters") or [])
    allow_pickle = bool(manifest["base_model"].get("allow_pickle"))  # the run's model.allow_pickle

    def load_base(dtype: Any) -> Any:
        model = _load_pretrained(base, dtype, rope, head, pad_token_id, auto_class, allow_pickle)
        if rows:  # the run added tokens: the base grows as in training, so the trained embeddings fit
            from ft_core.engine.models.loader import grow_embeddings

            grow_embeddings(model, rows)
        if merged:  # the run trained on a base with these adapters merged in (model.adapters)
            from ft_core.engine.models.adapters import merge_adapters

            model = merge_adapters(model, merged)
        return model

    def load(dtype: Any) -> Any:
        return adapter.load_for_inference(str(artefact), lambda: load_base(dtype))

    return _TrainedRun(manifest, artefact, adapter_name, head, load, vision)


def _run_target(folder: Path, plugins: Plugins) -> ChatTarget:
    run = _trained_run(folder, plugins)
    if run.head != "causal_lm":
        raise FtCoreError(
            f"{folder}: the run trained a model with a {run.head} head, which scores text and does not chat; score "
            f"with it in Python: model, tokenizer = ft_core.bootstrap.load_trained_model({str(folder)!r})"
        )
    manifest = run.manifest
    template = manifest.get("template", {})
    return ChatTarget(
        description=f"{folder} ({run.adapter_name} on {manifest['base_model']['name_or_path']})",
        tokenizer_path=str(run.artefact),
        load_model=run.load,
        stop_words=list(template.get("stop_words", [])),
        system=template.get("system"),
        template_kwargs=dict(template.get("template_kwargs") or {}),
        template=template.get("name"),
        vision=run.vision,
        generation=run_generation(folder),
    )


def resolve_chat_target(path: str, plugins: Plugins, adapters: Sequence[str] = ()) -> ChatTarget:
    """A run folder (base + adapter, using the run's chat template) or a model reference (a Hugging Face
    folder, a Hub id, a ``.gguf`` file or the embedded alias); ``adapters`` (PEFT adapter or run folders) are merged
    into the loaded model, in order."""
    target = _resolve_chat_target(path, plugins)
    if not adapters:
        return target
    from ft_core.engine.models.adapters import adapter_folder, merge_adapters

    folders = [adapter_folder(reference) for reference in adapters]
    load = target.load_model
    return dataclasses.replace(
        target,
        description=f"{target.description} + {', '.join(str(f) for f in folders)}",
        load_model=lambda dtype: merge_adapters(load(dtype), folders),
    )


def _resolve_chat_target(path: str, plugins: Plugins) -> ChatTarget:
    from ft_core.engine.models.embedded import is_embedded_alias, resolve_model_path
    from ft_core.engine.models.hub import is_hub_id

    if not is_embedded_alias(path) and not (is_hub_id(path) and _could_be_hub_id(path)):
        folder = Path(path).expanduser()
        if not folder.exists():
            raise _missing(path)
        if folder.is_dir():
            if (folder / output.MANIFEST).is_file():
                return _run_target(folder, plugins)
            if not (folder / "config.json").is_file():
                checkpoints = bool(output.checkpoints(folder))
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
    family = _vision_family(plugins, None, resolved)
    if family is not None:  # a vision-language model folder: its own class, its tokenizer's template
        from ft_core.engine.vision.model import model_class

        auto_class = model_class(family, None)
        return ChatTarget(
            description=path,
            tokenizer_path=resolved,
            load_model=lambda dtype: _load_pretrained(resolved, dtype, auto_class=auto_class),
            vision=_vision_target(plugins, family, resolved, None, derived=True),
        )
    return ChatTarget(
        description=path, tokenizer_path=resolved, load_model=lambda dtype: _load_pretrained(resolved, dtype)
    )


def load_trained_model(
    run_dir: str | Path,
    plugins: Plugins,
    *,
    dtype: Any = "auto",
    add_heads: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any]:
    """A finished run's trained model with its head, in eval mode, and its tokenizer: a reward model
    (``sequence_classification``: ``model(**batch).logits`` has one score per row), a value model (one score per
    token) or a causal LM, whatever the adapter method (LoRA merged into its base, or the whole model).

    ``add_heads(model)`` adds the stage's custom head modules (as its ``prepare_model`` did) and returns the model;
    their weights then load from the artefact's ``heads.safetensors``. A run whose artefact holds custom heads
    needs it. ``dtype``: the weights' dtype (``"auto"``: as saved).
    """
    from transformers import AutoTokenizer

    run = _trained_run(Path(run_dir).expanduser(), plugins)
    artefact = run.artefact
    model = run.load(dtype)
    if add_heads is not None:
        model = add_heads(model)
        load_heads(model, artefact)
    elif (artefact / HEADS_FILE).is_file():
        raise FtCoreError(
            f"{artefact} holds custom head modules ({HEADS_FILE}): pass add_heads, a function adding them to the "
            "model as the stage's prepare_model did, to load them"
        )
    return model.eval(), AutoTokenizer.from_pretrained(str(artefact))
