"""The wandb logger: a short run logged offline, read back from the offline run's files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ft_core_wandb
from ft_core.testing import run_config
from ft_core.testing.import_light import check_import_light


def test_registers_wandb(make_plugins: Any) -> None:
    plugins = make_plugins(ft_core_wandb, distribution="ft-core-wandb")
    assert plugins.names("logger") == ["wandb"]
    assert plugins.get("logger", "wandb").options_schema is ft_core_wandb.WandbOptions


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_wandb", forbidden=("torch", "transformers", "wandb"))


def _records(run_file: Path) -> list[Any]:
    """The protobuf records of an offline ``.wandb`` file: a 7-byte ``:W&B`` header, then LevelDB-log blocks of 32 KiB
    whose records have a 7-byte header (CRC32, little-endian length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, offset, block = [], b"", 7, 32768
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block's tail too short for a header is padding
            offset += block - offset % block
            continue
        length, kind = int.from_bytes(data[offset + 4 : offset + 6], "little"), data[offset + 6]
        if length == 0 and kind == 0:
            break
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _items(items: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def test_offline_run_holds_metrics_config_and_versions(
    make_config: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    path = make_config(
        loggers=[{"name": "wandb", "project": "ft-core-test", "tags": ["tiny"], "dir": str(tmp_path / "wb")}],
        training={"max_steps": 3, "plot_loss": False},
    )
    run_config(path, ft_core_wandb, distribution="ft-core-wandb")
    [offline] = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    records = _records(next(offline.glob("run-*.wandb")))
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "history" in kinds, kinds
    losses = [(row["_step"], row["train/loss"]) for row in history if "train/loss" in row]
    assert [step for step, _ in losses] == [1, 2, 3] and all(loss > 0 for _, loss in losses)
    config: dict[str, Any] = {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update(_items(record.run.config.update))
        elif kind == "config":
            config.update(_items(record.config.update))
    assert config["ft_core_config"]["training"]["max_steps"] == 3
    components = {(c["section"], c["name"]): c for c in config["ft_core_components"]}
    assert components[("adapter", "lora")]["distribution"] == "ft-core-lora"
    assert components[("loggers", "wandb")]["version"]
    assert {"wandb", "lora", "sft"} <= {p["name"] for p in config["ft_core_plugins"]}
    summary: dict[str, Any] = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update(_items(record.summary.update))
    assert summary["ft_core_status"] == "finished" and "train/train_loss" in summary
