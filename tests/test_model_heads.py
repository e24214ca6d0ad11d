"""Roles with heads: a stage's options choose its policy model's head (a reward model's sequence classification, a
value model's per-token score), the model loads through the named steps with that head, the adapter trains it (LoRA
with PEFT's matching task type, full, freeze), and the artefact loads back with its head."""

from __future__ import annotations

import copy
import functools
import json
import types
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pytest
import torch

from ft_core.api import (
    ModelRole,
    NoOptions,
    TrainingStage,
    artefact_head,
    auto_model_class,
    find_heads,
    hookimpl,
    load_heads,
    model_head,
    peft_task_type,
    save_heads,
)
from ft_core.bootstrap import load_plugins
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.model_steps import STEPS
from ft_core.engine.run.plan import build_plan
from ft_core.engine.run.runner import load_and_validate, run_training
from ft_core.testing.conformance_stages import check_stage
from ft_core.testing.tiny import tiny_tokenizer

HEAD_SHAPES = {"sequence_classification": (2, 1), "value": (2, 9, 1)}


@dataclass(frozen=True)
class ScoreOptions:
    """Options of the test's ``score`` stage."""

    head: Literal["sequence_classification", "value"] = "sequence_classification"


@functools.cache
def _pad_id() -> int:
    return tiny_tokenizer().pad_token_id


def collate(rows: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` and the rows' targets."""
    length = max(len(row["input_ids"]) for row in rows)
    ids = [row["input_ids"] + [pad_id] * (length - len(row["input_ids"])) for row in rows]
    mask = [[1] * len(row["input_ids"]) + [0] * (length - len(row["input_ids"])) for row in rows]
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "target": torch.tensor([row["target"] for row in rows]),
    }


def _score_trainer() -> type:
    from transformers import Trainer

    class ScoreTrainer(Trainer):
        """Squared error of the score (a value model: its mean over the row's tokens) against the row's target."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            target, mask = inputs["target"], inputs["attention_mask"]
            outputs = model(input_ids=inputs["input_ids"], attention_mask=mask)
            scores = outputs.logits.squeeze(-1).float()
            if scores.dim() == 2:
                scores = (scores * mask).sum(-1) / mask.sum(-1)
            loss = ((scores - target) ** 2).mean()
            return (loss, outputs) if return_outputs else loss

    return ScoreTrainer


class ScoreStage(TrainingStage[ScoreOptions]):
    """Scores conversations: the policy model's head comes from the ``head`` option."""

    options_schema: ClassVar[type] = ScoreOptions

    def roles(self, options: ScoreOptions) -> tuple[ModelRole, ...]:
        return (
            ModelRole("policy", head=options.head),
            ModelRole("reward", head="sequence_classification", trainable=False),
        )

    def preprocess(self, samples, encoder, options):
        rows = [encoder.encode_conversation(sample) for sample in samples]
        return [
            {"input_ids": row["input_ids"], "target": float(len(row["input_ids"]) % 2)}
            for row in rows
            if row is not None
        ]

    def collator(self, run):
        return functools.partial(collate, pad_id=run.tokenizer.pad_token_id)

    def build_trainer(self, run, train_dataset, eval_dataset):
        return run.build_trainer(
            model=run.load_model("policy"),
            args=run.training_arguments(),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=_score_trainer(),
        )


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(20, 300, (2, 9), generator=generator)
    input_ids[1, 6:] = _pad_id()
    mask = (input_ids != _pad_id()).long()
    return {"input_ids": input_ids, "attention_mask": mask}


def _scores(model: Any) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**_batch()).logits.float()


def _plugin(seen: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType("score_stage_plugin")

    @hookimpl
    def ft_register_stages(register):
        register("score", ScoreStage())

    @hookimpl
    def ft_load_model(role, model_folder, head):
        seen.setdefault("loads", []).append((role, model_folder, head))

    @hookimpl
    def ft_after_train(trainer, run, metrics):
        seen["scores"] = _scores(trainer.model)

    module.ft_register_stages = ft_register_stages
    module.ft_load_model = ft_load_model
    module.ft_after_train = ft_after_train
    return module


def _engine_run(path, seen: dict[str, Any], tmp_path) -> EngineRun:
    plugins = load_plugins(strict=True, extra=[(_plugin(seen), "score-stage")])
    plan, _ = build_plan(load_and_validate(str(path), [], plugins), plugins, prepare=False)
    return EngineRun(plan, plugins, tmp_path)


def _head_weights(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".score." in f".{n}."}


def _train_step(model: Any) -> None:
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    scores = model(**_batch()).logits.float()
    ((scores - 1.0) ** 2).mean().backward()
    optimizer.step()


# ---------------------------------------------------------------------------------------------- the named steps
def test_the_steps_are_named_in_order():
    assert [name for name, _ in STEPS] == ["config", "quantizer", "weights", "patches", "training", "ready"]


@pytest.mark.parametrize(
    ("head", "task_type", "model_class"),
    [
        ("sequence_classification", "SEQ_CLS", "LlamaForSequenceClassification"),
        ("value", "TOKEN_CLS", "LlamaForTokenClassification"),
    ],
)
def test_lora_trains_the_roles_head_with_the_matching_task_type(
    make_config, tmp_path, tiny_model_dir, head, task_type, model_class
):
    seen: dict[str, Any] = {}
    run = _engine_run(make_config(stage={"name": "score", "head": head}), seen, tmp_path)
    model = run.load_model("policy")
    assert seen["loads"] == [("policy", tiny_model_dir, head)], "ft_load_model gets the folder and the head"
    assert model.peft_config["default"].task_type == task_type
    assert type(model.get_base_model()).__name__ == model_class and model_head(model) == head
    assert model.get_base_model().config.pad_token_id == run.tokenizer.pad_token_id
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("score.modules_to_save.default" in n for n in trainable), "PEFT trains the score layer"
    assert any("lora_A" in n for n in trainable)
    assert _scores(model).shape == HEAD_SHAPES[head]
    before = _head_weights(model)
    _train_step(model)
    after = _head_weights(model)
    assert any(not torch.equal(before[n], after[n]) for n in before if "modules_to_save" in n), (
        "the head trained"
    )
    assert run.facts["roles"]["policy"] == {"head": head, "trainable": True, "head_modules": []}


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_full_and_freeze_train_a_classification_head(make_config, tmp_path, method):
    adapter = {"method": method} if method == "full" else {"method": "freeze", "trainable_layers": 1}
    run = _engine_run(make_config(stage={"name": "score"}, adapter=adapter), {}, tmp_path)
    model = run.load_model("policy")
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.score.weight.requires_grad and model.score.weight.dtype == torch.float32
    embeddings_train = model.model.embed_tokens.weight.requires_grad
    assert embeddings_train is (method == "full"), "freeze trains its layers and the head only"
    before = model.score.weight.detach().clone()
    _train_step(model)
    assert not torch.equal(before, model.score.weight), "the head trained"
    assert _scores(model).shape == (2, 1)


def test_a_frozen_role_loads_with_its_head_in_eval_mode(make_config, tmp_path):
    run = _engine_run(make_config(stage={"name": "score"}), {}, tmp_path)
    reward = run.load_model("reward")  # the role is declared frozen
    assert type(reward).__name__ == "LlamaForSequenceClassification"
    assert not reward.training and not any(p.requires_grad for p in reward.parameters())
    undeclared = run.load_model("reference", trainable=False)  # a name the stage does not list: a causal LM
    assert type(undeclared).__name__ == "LlamaForCausalLM"
    assert run.facts["roles"]["reward"]["trainable"] is False


# ------------------------------------------------------------------------------------------ stages and roles
def test_default_roles_come_from_the_class_attributes():
    class OldStage(TrainingStage[NoOptions]):
        model_roles = ("policy", "reference")
        head_modules = ("v_head",)

    stage = OldStage()
    assert stage.roles(NoOptions()) == (
        ModelRole("policy", head_modules=("v_head",)),
        ModelRole("reference", head_modules=("v_head",)),
    )
    assert stage.role("value", NoOptions()) == ModelRole("value")
    assert stage.next_steps("runs/x") == ["results in runs/x; chat with it: ft-core chat runs/x"]


def test_an_option_chooses_the_head_and_the_follow_up_lines():
    stage = ScoreStage()
    assert stage.role("policy", ScoreOptions(head="value")).head == "value"
    lines = stage.next_steps("runs/rm", ScoreOptions())
    assert "sequence_classification head" in lines[0] and "ft-core chat" not in " ".join(lines)
    assert "load_trained_model('runs/rm')" in lines[1]
    with pytest.raises(ValueError, match="head 'reward' is not one of"):
        ModelRole("policy", head="reward")  # type: ignore[arg-type]


def test_the_stage_conformance_check_reads_the_roles(tiny_tokenizer):
    from ft_core.api import Conversation, Message
    from ft_core.testing import make_encoder

    samples = [
        Conversation([Message("user", f"hello {i}"), Message("assistant", "hi" * (i + 1))]) for i in range(4)
    ]
    rows = check_stage(ScoreStage(), ScoreOptions(), make_encoder(tiny_tokenizer, cutoff_len=64), samples)
    assert {"input_ids", "target"} == set(rows[0])

    class NoPolicy(ScoreStage):
        def roles(self, options):
            return (ModelRole("reward", trainable=False),)

    with pytest.raises(AssertionError, match="trainable 'policy'"):
        check_stage(NoPolicy(), ScoreOptions(), make_encoder(tiny_tokenizer, cutoff_len=64), samples)


# ---------------------------------------------------------------------------------------- saving and loading
@pytest.mark.parametrize(("method", "head"), [("lora", "value"), ("freeze", "sequence_classification")])
def test_an_adapters_artefact_loads_back_with_its_head(
    make_plugins, tiny_model_dir, tiny_tokenizer, tmp_path, method, head
):
    from transformers import AutoConfig

    import ft_core_freeze
    import ft_core_lora

    plugins = make_plugins(ft_core_lora, ft_core_freeze)
    adapter = plugins.get("adapter", method)
    options = adapter.options_schema(
        **({"rank": 4, "alpha": 8} if method == "lora" else {"trainable_layers": 1})
    )

    def load_base() -> Any:
        config = AutoConfig.from_pretrained(
            tiny_model_dir, num_labels=1, pad_token_id=tiny_tokenizer.pad_token_id
        )
        return auto_model_class(head).from_pretrained(tiny_model_dir, config=config)

    torch.manual_seed(0)
    model = adapter.apply(load_base(), options, None)
    _train_step(model)
    adapter.save(model, str(tmp_path / "artefact"))
    assert artefact_head(tmp_path / "artefact") == head
    loaded = adapter.load_for_inference(str(tmp_path / "artefact"), load_base)
    assert model_head(loaded) == head
    torch.testing.assert_close(_scores(loaded), _scores(model), atol=1e-4, rtol=1e-4)
    if method == "lora":
        with pytest.raises(Exception, match="with a value head"):
            adapter.load_for_inference(
                str(tmp_path / "artefact"),
                lambda: auto_model_class("causal_lm").from_pretrained(tiny_model_dir),
            )


def _run(path, seen: dict[str, Any]):
    plugins = load_plugins(strict=True, extra=[(_plugin(seen), "score-stage")])
    return run_training(load_and_validate(str(path), [], plugins), plugins), plugins


@pytest.mark.parametrize(("method", "head"), [("lora", "sequence_classification"), ("full", "value")])
def test_a_trained_run_loads_back_with_its_head(make_config, method, head):
    from ft_core.engine.inference.target import load_trained_model, resolve_chat_target

    adapter = {"method": method} if method == "full" else {"method": "lora", "rank": 4, "alpha": 8}
    path = make_config(
        stage={"name": "score", "head": head}, adapter=adapter, training={"learning_rate": 1e-2}
    )
    seen: dict[str, Any] = {}
    run_dir, plugins = _run(path, seen)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["roles"]["policy"]["head"] == head
    model, tokenizer = load_trained_model(run_dir, plugins, dtype=torch.float32)
    assert model_head(model) == head and not model.training
    assert tokenizer.pad_token_id == model.config.pad_token_id
    torch.testing.assert_close(_scores(model), seen["scores"], atol=1e-4, rtol=1e-4)
    with pytest.raises(Exception, match=f"a {head} head, which scores text and does not chat"):
        resolve_chat_target(str(run_dir), plugins)


# ------------------------------------------------------------------------------------------------ custom heads
def test_custom_heads_save_and_load_back(tiny_model, tmp_path):
    tiny_model.v_head = torch.nn.Linear(tiny_model.config.hidden_size, 1)
    heads = find_heads(tiny_model, ("v_head",))
    save_heads(heads, tmp_path)
    other = copy.deepcopy(tiny_model)
    torch.nn.init.zeros_(other.v_head.weight)
    assert list(load_heads(other, tmp_path)) == ["v_head"]  # the names come from the file
    torch.testing.assert_close(other.v_head.weight, tiny_model.v_head.weight)
    assert load_heads(other, tmp_path / "missing") == {}
    assert peft_task_type(tiny_model) == "CAUSAL_LM"
