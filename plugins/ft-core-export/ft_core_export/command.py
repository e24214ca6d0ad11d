"""The ``ft-core export`` command: argument parsing and the checks that need no model (import-light)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import CliCommand, FtCoreError

#: ``--gguf`` output types llama.cpp's ``convert_hf_to_gguf.py`` writes without a separate quantize step.
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0", "auto")
#: The converter script of llama.cpp (``--llama-cpp DIR`` or ``$LLAMA_CPP_DIR``).
CONVERTER = "convert_hf_to_gguf.py"
_DTYPES = ("auto", "float32", "bfloat16", "float16")


def read_run(folder: Path) -> dict[str, Any]:
    """The manifest of the run folder ``folder``; a clear error when it is not a run folder."""
    if not folder.exists():
        raise FtCoreError(f"no such run folder: {folder} (relative paths start from {Path.cwd()})")
    manifest_file = folder / "manifest.json"
    if not folder.is_dir() or not manifest_file.is_file():
        what = "a file" if not folder.is_dir() else "a folder without manifest.json"
        plain = (
            " It looks like a Hugging Face model folder (it has config.json): there is no adapter to merge; load it "
            "with transformers as it is."
            if (folder / "config.json").is_file()
            else ""
        )
        raise FtCoreError(
            f"{folder} is not a run folder ({what}); give a folder written by `ft-core run` (it holds "
            f"manifest.json and the trained model).{plain}"
        )
    try:
        manifest: dict[str, Any] = json.loads(manifest_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FtCoreError(f"{manifest_file}: not valid JSON ({exc}); is the run folder damaged?") from None
    return manifest


def quantization_of(manifest: dict[str, Any]) -> str | None:
    """The quantizer a run trained with (``nf4``, ``int8``, a torchao method, ...), or ``None``."""
    for component in manifest.get("components", []):
        if component.get("section") == "quantization":
            return str(component.get("name"))
    return None


def prequantized_base(manifest: dict[str, Any]) -> str | None:
    """The ``quant_method`` of the run's base model when it is a pre-quantized checkpoint (GPTQ, AWQ, AQLM, ...: its
    ``config.json`` holds a ``quantization_config``), else ``None``."""
    folder = (manifest.get("base_model") or {}).get("path")
    try:
        config = json.loads((Path(str(folder)) / "config.json").read_text(encoding="utf-8")) if folder else {}
    except (OSError, ValueError):
        return None
    quantization = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(quantization, dict):
        return None
    return str(quantization.get("quant_method") or "unknown")


def run_dtype(manifest: dict[str, Any]) -> str:
    """The dtype the run loaded its model in (its ``dtype`` decision), ``float32`` when it did not record one."""
    decision = (manifest.get("decisions") or {}).get("dtype") or {}
    value = decision.get("value") if isinstance(decision, dict) else None
    return str(value) if value in _DTYPES[1:] else "float32"


def find_converter(llama_cpp: str | None) -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py`` in ``--llama-cpp`` (or ``$LLAMA_CPP_DIR``), checked before any model
    loads; the ``gguf`` package must be importable too (the converter writes with it)."""
    import importlib.util

    where = llama_cpp or os.environ.get("LLAMA_CPP_DIR")
    how = (
        "GGUF export runs llama.cpp's own converter, which no PyPI package ships: clone llama.cpp "
        "(github.com/ggml-org/llama.cpp), `pip install -r requirements/requirements-convert_hf_to_gguf.txt` there, "
        "and pass --llama-cpp PATH_TO_LLAMA_CPP (or set LLAMA_CPP_DIR). Or export without --gguf and convert the "
        "folder yourself"
    )
    if not where:
        raise FtCoreError(f"--gguf: no llama.cpp checkout given. {how}")
    path = Path(os.path.expanduser(where))
    script = path if path.is_file() else path / CONVERTER
    if not script.is_file():
        raise FtCoreError(f"--gguf: {script} not found. {how}")
    if importlib.util.find_spec("gguf") is None:
        raise FtCoreError("--gguf: the converter needs the gguf package: pip install 'ft-core-export[gguf]'")
    return script


class ExportCommand(CliCommand):
    help: ClassVar[str] = "merge a run's adapter into its base and write a plain transformers model (or GGUF)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `ft-core run`")
        parser.add_argument("-o", "--output", help="folder to write (default: RUN_DIR/export)")
        parser.add_argument(
            "--dtype",
            choices=_DTYPES,
            default="auto",
            help="dtype of the written weights (default auto: the dtype the run loaded its model in)",
        )
        parser.add_argument(
            "--max-shard-size", default="2GB", help="largest safetensors shard, e.g. 500MB, 5GB (default 2GB)"
        )
        parser.add_argument(
            "--dequantize",
            action="store_true",
            help="for a run trained on a quantized base (QLoRA): load the base unquantized in the run's dtype and "
            "merge the adapter into it",
        )
        parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
        parser.add_argument(
            "--gguf",
            choices=GGUF_TYPES,
            help="also write a GGUF file of this type with llama.cpp's convert_hf_to_gguf.py (needs --llama-cpp)",
        )
        parser.add_argument(
            "--llama-cpp",
            metavar="DIR",
            help="llama.cpp checkout holding convert_hf_to_gguf.py ($LLAMA_CPP_DIR)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core_export.merge import export_run

        folder = Path(os.path.expanduser(args.run_dir))
        manifest = read_run(folder)
        output = Path(os.path.expanduser(args.output)) if args.output else folder / "export"
        if output.resolve() == folder.resolve() or output.resolve() == (folder / "model").resolve():
            raise FtCoreError(f"--output {output}: would overwrite the run itself; pick another folder")
        occupied = output.exists() and (not output.is_dir() or any(output.iterdir()))
        if occupied and not args.overwrite:
            raise FtCoreError(
                f"{output} already exists and is not empty; pass --overwrite or another --output"
            )
        converter = find_converter(args.llama_cpp) if args.gguf else None
        prequantized = prequantized_base(manifest)
        if prequantized:
            raise FtCoreError(
                f"{folder}: the run trained a LoRA adapter on a pre-quantized {prequantized} checkpoint "
                f"({(manifest.get('base_model') or {}).get('name_or_path', '?')}). Its packed weights can neither take "
                "the merged adapter nor be dequantized back to the original model here, so export does not merge (with "
                "or without --dequantize). Use the adapter on the quantized checkpoint as it is "
                f"(peft.PeftModel.from_pretrained(base, {str(folder / 'model')!r})), or train on the unquantized "
                "model and export that run"
            )
        quantized = quantization_of(manifest)
        if quantized and not args.dequantize:
            raise FtCoreError(
                f"{folder}: the run trained a LoRA adapter on a {quantized}-quantized base. Merging it into quantized "
                "weights would round them again and give neither the model you trained nor a plain transformers "
                f"model, so export does not do it. Either export with --dequantize (the base is loaded unquantized in "
                f"{run_dtype(manifest)} and the adapter merged into it: the usual QLoRA export; its outputs differ "
                "slightly from the quantized model's), or retrain without `quantization:` and export that run"
            )
        if output.exists() and args.overwrite:
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        written = export_run(
            folder,
            manifest,
            args.services.chat_target(str(folder)),
            output,
            dtype=run_dtype(manifest) if args.dtype == "auto" else args.dtype,
            max_shard_size=args.max_shard_size,
            dequantized=quantized,
            gguf=(converter, args.gguf) if converter is not None else None,
        )
        for path in written:
            print(path)
        return 0
