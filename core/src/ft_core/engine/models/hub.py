"""Hugging Face Hub model ids (``Qwen/Qwen2.5-7B-Instruct``): resolved through the Hugging Face cache, downloaded
where a network exists, and a clear error naming the id and ``HF_HUB_OFFLINE`` where none does.

:func:`hub_problem` checks an id at validation without downloading weights (the cache, else one metadata request);
:func:`download` returns the local snapshot folder the rest of ft-core reads like any model folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ft_core.api.errors import FtCoreError

#: ``org/name``: a Hub repo id (letters, digits, ``-_.``; neither part starts with ``.`` or ``-``).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
#: Weight formats ft-core never loads (other frameworks, the original checkpoints, GGUF exports).
_IGNORED = [
    "*.pth", "*.pt", "original/*", "*.gguf", "*.onnx", "*.onnx_data", "onnx/*", "openvino/*", "*.msgpack", "*.h5",
    "*.ot", "*.tflite", "flax_model*", "tf_model*", "coreml/*",
]  # fmt: skip


def is_hub_id(reference: str) -> bool:
    """Whether ``reference`` has the form of a Hub repo id (``org/name``) and is not a local path (neither it nor
    its ``org`` folder exists here)."""
    if not _HUB_ID.match(reference):
        return False
    return not Path(reference).exists() and not Path(reference.split("/")[0]).exists()


def offline() -> bool:
    """Whether the Hugging Face libraries are told to stay offline (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(
        f.strip().lower() in ("1", "true", "yes", "on") for f in flags
    )


def _shown(repo_id: str, revision: str | None) -> str:
    return f"{repo_id!r}" + (f" (revision {revision})" if revision else "")


def cached_folder(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> str | None:
    """The snapshot folder of ``repo_id`` in the Hugging Face cache, or ``None`` when it is not there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return str(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def _offline_error(repo_id: str, revision: str | None, cache_dir: str | None, why: str) -> FtCoreError:
    from huggingface_hub import constants

    return FtCoreError(
        f"model {_shown(repo_id, revision)} is not in the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE}) "
        f"and {why}. Download it where a network exists (`hf download {repo_id}`"
        + (f" --revision {revision}" if revision else "")
        + ") and copy the cache here, or give a local folder; with a network, unset HF_HUB_OFFLINE"
    )


def hub_problem(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> str | None:
    """Why ``repo_id`` cannot be loaded, or ``None``: found in the cache, or the Hub knows it (one metadata request;
    no weights are downloaded)."""
    if cached_folder(repo_id, revision, cache_dir) is not None:
        return None
    if offline():
        return str(_offline_error(repo_id, revision, cache_dir, "HF_HUB_OFFLINE is set"))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=15)
    except GatedRepoError:
        return (
            f"model {_shown(repo_id, revision)} is gated on the Hugging Face Hub: accept its terms on "
            f"https://huggingface.co/{repo_id} and log in (`hf auth login` or HF_TOKEN)"
        )
    except RevisionNotFoundError:
        return f"model {repo_id!r} has no revision {revision!r} on the Hugging Face Hub (model.revision)"
    except RepositoryNotFoundError:
        return (
            f"model {repo_id!r} is neither a local folder nor a model on the Hugging Face Hub (private models need "
            "`hf auth login` or HF_TOKEN); check the name"
        )
    except Exception as exc:  # no network, a proxy, a timeout: the Hub cannot be asked
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return str(_offline_error(repo_id, revision, cache_dir, f"the Hub cannot be reached ({detail})"))
    return None


def download(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> str:
    """The local snapshot folder of ``repo_id``: from the cache, downloading what is missing where a network exists
    (safetensors weights when the repo has them, never another framework's)."""
    from huggingface_hub import HfApi, snapshot_download

    cached = cached_folder(repo_id, revision, cache_dir)
    if offline():
        if cached is None:
            raise _offline_error(repo_id, revision, cache_dir, "HF_HUB_OFFLINE is set")
        return cached
    ignore = list(_IGNORED)
    try:
        files = [
            s.rfilename for s in HfApi().model_info(repo_id, revision=revision, timeout=15).siblings or []
        ]
        if any(name.endswith(".safetensors") for name in files):
            ignore.append("*.bin")
        return str(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, ignore_patterns=ignore))
    except Exception as exc:
        if cached is not None:  # the Hub cannot be reached: the cached snapshot is what there is
            return cached
        problem = hub_problem(repo_id, revision, cache_dir)
        raise FtCoreError(problem or f"cannot download model {_shown(repo_id, revision)}: {exc}") from exc
