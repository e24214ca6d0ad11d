"""A stage's custom head modules (a value / reward head of its own): trained with the adapter, saved into checkpoints
and the artefact, restored when a run resumes, and loaded back with the trained model."""

from __future__ import annotations

import types
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ft_core.api import FtCoreError, NoOptions, TrainingStage, hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.engine.run.runner import load_and_validate, run_training


def _head_trainer() -> type:
    from transformers import Trainer

    class HeadTrainer(Trainer):
        def __init__(self, *args: Any, head: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.head = head

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs, output_hidden_states=True)
            value = self.head(outputs.hidden_states[-1].float()).pow(2).mean()
            return outputs.loss + value

    return HeadTrainer


class HeadStage(TrainingStage[NoOptions]):
    """SFT plus a scalar head on the last hidden state (a stand-in for a value head)."""

    head_modules = ("v_head",)

    def preprocess(self, samples, encoder, options):
        return [row for row in map(encoder.encode_conversation, samples) if row is not None]

    def collator(self, run):
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(run.tokenizer, label_pad_token_id=-100)

    def prepare_model(self, model, run, role):
        model.v_head = torch.nn.Linear(model.config.hidden_size, 1)
        return model

    def build_trainer(self, run, train_dataset, eval_dataset):
        policy = run.load_model("policy")
        head = next(m for name, m in policy.named_modules() if name.endswith("v_head"))
        return run.build_trainer(
            model=policy,
            args=run.training_arguments(),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=_head_trainer(),
            head=head,
        )


def _plugin(seen: dict[str, Any], crash_at: int | None = None) -> types.ModuleType:
    from transformers import TrainerCallback

    module = types.ModuleType("head_stage_plugin")

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            head = next(m for name, m in model.named_modules() if name.endswith("v_head"))
            seen["at_start"] = head.weight.detach().clone()

        def on_step_begin(self, args, state, control, **kwargs):
            if crash_at is not None and state.global_step == crash_at:
                raise KeyboardInterrupt("simulated kill")

    @hookimpl
    def ft_register_stages(register):
        register("head-sft", HeadStage())

    @hookimpl
    def ft_trainer_callbacks(run):
        return [Watch()]

    module.ft_register_stages = ft_register_stages
    module.ft_trainer_callbacks = ft_trainer_callbacks
    return module


def _run(path, plugin) -> Any:
    plugins = load_plugins(strict=True, extra=[(plugin, "head-stage")])
    return run_training(load_and_validate(str(path), [], plugins), plugins)


def test_heads_train_are_checkpointed_saved_and_restored_on_resume(make_config, tmp_path):
    path = make_config(stage="head-sft", training={"max_steps": 3, "save_steps": 1, "learning_rate": 1e-2})
    seen: dict[str, Any] = {}
    with pytest.raises(KeyboardInterrupt):
        _run(path, _plugin(seen, crash_at=2))
    run = tmp_path / "run"
    first = load_file(str(run / "checkpoint-1" / "heads.safetensors"))["v_head.weight"]
    assert not torch.equal(first, seen["at_start"]), "the head did not train"

    resumed: dict[str, Any] = {}
    _run(path, _plugin(resumed))
    torch.testing.assert_close(
        resumed["at_start"], load_file(str(run / "checkpoint-2" / "heads.safetensors"))["v_head.weight"]
    )
    final = load_file(str(run / "model" / "heads.safetensors"))["v_head.weight"]
    assert not torch.equal(final, first)

    from ft_core.engine.inference.target import load_trained_model

    def add_heads(model):
        model.v_head = torch.nn.Linear(model.config.hidden_size, 1)
        return model

    with pytest.raises(FtCoreError, match="holds custom head modules"):
        load_trained_model(run, load_plugins())
    model, _ = load_trained_model(run, load_plugins(), add_heads=add_heads)
    torch.testing.assert_close(model.v_head.weight, final)
