"""The mlflow logger: a short run logged into a sqlite store, read back through MLflow's client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ft_core_mlflow
from ft_core.testing import run_config
from ft_core.testing.import_light import check_import_light


def test_registers_mlflow(make_plugins: Any) -> None:
    plugins = make_plugins(ft_core_mlflow, distribution="ft-core-mlflow")
    assert plugins.names("logger") == ["mlflow"]
    assert plugins.get("logger", "mlflow").options_schema is ft_core_mlflow.MlflowOptions


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_mlflow", forbidden=("torch", "transformers", "mlflow"))


def test_flatten() -> None:
    assert ft_core_mlflow.flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x" * 7000}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "x" * 5997 + "...",
    }


def test_sqlite_store_holds_metrics_config_and_versions(
    make_config: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    path = make_config(
        loggers=[{"name": "mlflow", "tracking_uri": uri, "experiment": "tiny", "tags": {"team": "ft"}}],
        training={"max_steps": 3, "plot_loss": False},
    )
    run_dir = run_config(path, ft_core_mlflow, distribution="ft-core-mlflow")
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == Path(run_dir).name
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == [1, 2, 3] and all(m.value > 0 for m in losses)
    assert run.data.params["training.max_steps"] == "3"
    assert run.data.params["adapter.method"] == "lora"
    assert run.data.tags["ft_core.component.adapter"].startswith("lora (ft-core-lora ")
    assert run.data.tags["ft_core.component.loggers"].startswith("mlflow (ft-core-mlflow ")
    assert run.data.tags["ft_core.plugin.sft"].startswith("ft-core-sft ")
    assert run.data.tags["team"] == "ft"
    assert "final/train_loss" in run.data.metrics
