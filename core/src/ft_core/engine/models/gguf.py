"""Convert a GGUF checkpoint once into a normal Hugging Face folder (safetensors + tokenizer) in a cache.

transformers loads GGUF files dequantized to fp32 but keeps them flagged as GGUF-quantized, and such a
model can be neither trained nor saved. :func:`convert_gguf` drops the flag, saves the model and the
tokenizer (with its chat template) and returns the folder; later calls return it without loading anything.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ft_core.api.errors import FtCoreError
from ft_core.engine.storage import atomic_folder, cache_root, file_sha256

logger = logging.getLogger(__name__)

#: Files whose presence marks a complete converted folder.
_COMPLETE_MARKERS = ("config.json", "model.safetensors")


def default_model_cache() -> Path:
    """Where converted models live by default: ``<cache root>/models``."""
    return cache_root() / "models"


def converted_folder(
    gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The cache folder that :func:`convert_gguf` uses for ``gguf_path``: ``<cache>/<stem>-<sha256[:16]>``."""
    source = Path(gguf_path).expanduser()
    root = Path(cache_dir).expanduser() if cache_dir else default_model_cache()
    return root / f"{source.stem}-{file_sha256(source)[:16]}"


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _COMPLETE_MARKERS)


def convert_gguf(gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Return a Hugging Face folder holding ``gguf_path`` converted to an unquantized model + tokenizer.

    ``cache_dir`` defaults to ``~/.cache/ft-core/models`` (``$FT_CORE_CACHE/models``). The folder is
    written under a temporary name and renamed in place, under a file lock, so concurrent callers neither
    convert twice nor see a half-written folder.
    """
    source = Path(gguf_path).expanduser()
    if not source.is_file():
        raise FtCoreError(f"GGUF file {str(source)!r} does not exist")
    target = converted_folder(source, cache_dir)
    if _is_complete(target):
        return str(target)
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if _is_complete(target):
            return str(target)
        if target.exists():  # an incomplete folder not written by us (e.g. files deleted by hand)
            shutil.rmtree(target)
        logger.info(f"converting {source.name} to a Hugging Face folder (once) in {target}")
        with atomic_folder(target) as temporary:
            _convert_into(source, temporary)
    return str(target)


def _convert_into(source: Path, folder: Path) -> None:
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise FtCoreError("reading .gguf files needs the gguf package: pip install gguf") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    directory, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        directory,
        gguf_file=name,
        dtype=torch.float32,
        quantization_config=GgufConfig(
            dequantize=True
        ),  # plain nn.Linear weights even if `kernels` is installed
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # drops hf_quantizer, is_quantized and config.quantization_config
        quantizer.remove_quantization_config(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
