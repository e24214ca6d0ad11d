"""FtDpoTrainer on a tiny model: pre-tokenized rows pass through, and the reference of a fresh LoRA adapter is
the model with the adapter disabled (no adapter copy)."""

from __future__ import annotations

from typing import Any

import pytest

from ft_core.api import Conversation, Message
from ft_core_dpo.stage import DpoOptions, DpoStage


def rows(encoder: Any) -> list[dict[str, list[int]]]:
    samples = [
        Conversation(
            [
                Message("user", f"Question {i}: who are you?"),
                Message("assistant", "I am a helpful assistant."),
            ],
            extra={"rejected": Message("assistant", "Go away.")},
        )
        for i in range(4)
    ]
    return DpoStage().preprocess(samples, encoder, DpoOptions())


def trainer(model: Any, tokenizer: Any, data: list[dict[str, Any]], output_dir: str, **overrides: Any) -> Any:
    import datasets
    from trl import DPOConfig

    from ft_core_dpo.trainer import FtDpoTrainer

    args = DPOConfig(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        save_strategy="no",
        remove_unused_columns=False,
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        disable_tqdm=True,
        logging_steps=1,
        **{**DpoOptions().trl_arguments(), **overrides},
    )
    return FtDpoTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=datasets.Dataset.from_list(data),
        processing_class=tokenizer,
        data_collator=DpoStage().collator(type("Run", (), {"tokenizer": tokenizer})()),
    )


def lora(model: Any, **overrides: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], **overrides
    )
    return get_peft_model(model, config)


def test_fresh_lora_trains_against_the_adapter_disabled_model(tiny_model, tiny_tokenizer, encoder, tmp_path):
    from ft_core_dpo.trainer import adapter_is_identity, is_adapter_model

    model = lora(tiny_model)
    assert is_adapter_model(model) and adapter_is_identity(model)
    data = rows(encoder())
    built = trainer(model, tiny_tokenizer, data, str(tmp_path))
    assert built.ref_model is None
    assert list(built.model.peft_config) == ["default"]  # TRL's "ref" adapter copy was dropped
    assert len(built.train_dataset) == len(data) and built.train_dataset.column_names == list(data[0])
    built.train()
    logged = built.state.log_history[0]
    # the first step's policy is the reference: the sigmoid loss is log 2
    assert "rewards/margins" in logged and logged["loss"] == pytest.approx(0.6931, abs=1e-3)
    built.model.save_pretrained(str(tmp_path / "adapter"))
    assert not (tmp_path / "adapter" / "ref").exists()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_an_adapter_that_is_not_an_identity_keeps_trls_reference_copy(
    tiny_model, tiny_tokenizer, encoder, tmp_path
):
    from ft_core_dpo.trainer import adapter_is_identity

    # random B matrices: disabling the adapter does not give the initial policy
    model = lora(tiny_model, init_lora_weights=False)
    assert not adapter_is_identity(model)
    built = trainer(model, tiny_tokenizer, rows(encoder()), str(tmp_path))
    assert "ref" in built.model.peft_config


def test_a_plain_model_is_not_an_adapter_model(tiny_model):
    from ft_core_dpo.trainer import adapter_is_identity, is_adapter_model

    assert not is_adapter_model(tiny_model)
    assert not adapter_is_identity(tiny_model)


class FakeRun:
    """The parts of a RunContext that ``DpoStage.build_trainer`` uses; records which models it loads."""

    def __init__(self, tokenizer: Any, output_dir: str, options: DpoOptions, adapter: bool) -> None:
        self.tokenizer = tokenizer
        self.output_dir = output_dir
        self.adapter = adapter
        self.config = type("Config", (), {"stage": type("Stage", (), {"options": options})()})()
        self.loaded: list[tuple[str, bool]] = []
        self.built: dict[str, Any] = {}

    def load_model(self, role: str = "policy", *, trainable: bool = True) -> Any:
        from ft_core.testing import tiny_model

        self.loaded.append((role, trainable))
        model = tiny_model(self.tokenizer)
        if not trainable:
            return model.requires_grad_(False).eval()
        return lora(model) if self.adapter else model

    def training_arguments(self, arguments_class: type, **overrides: Any) -> Any:
        return arguments_class(
            output_dir=self.output_dir,
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            report_to="none",
            max_steps=1,
            **overrides,
        )

    def build_trainer(self, *, trainer_class: type, **kwargs: Any) -> Any:
        self.built = kwargs
        return trainer_class(processing_class=self.tokenizer, **kwargs)


@pytest.mark.parametrize("adapter", [True, False])
def test_build_trainer_loads_a_frozen_reference_only_without_adapter(
    adapter, tiny_tokenizer, encoder, tmp_path
):
    import datasets

    from ft_core_dpo.trainer import FtDpoTrainer

    options = DpoOptions(beta=0.3, loss_type="hinge", ftx=0.5)
    run = FakeRun(tiny_tokenizer, str(tmp_path), options, adapter)
    data = datasets.Dataset.from_list(rows(encoder()))
    built = DpoStage().build_trainer(run, data, None)
    assert isinstance(built, FtDpoTrainer)
    if adapter:  # the reference is the policy with its adapter disabled
        assert run.loaded == [("policy", True)]
        assert run.built["ref_model"] is None and built.ref_model is None
    else:
        assert run.loaded == [("policy", True), ("reference", False)]
        reference = run.built["ref_model"]
        assert reference is not None and not any(p.requires_grad for p in reference.parameters())
        assert built.ref_model is not None
    assert built.args.beta == 0.3 and built.args.loss_type == ["hinge", "sft"]
    assert built.args.loss_weights == [1.0, 0.5] and built.args.max_length is None


def test_sigmoid_with_label_smoothing_is_conservative_dpo(tiny_model, tiny_tokenizer, encoder, tmp_path):
    """cDPO: -(1-e) log s(b d) - e log s(-b d) = the sigmoid loss + e * b * d (since log s(-x) = log s(x) - x)."""
    import torch

    torch.manual_seed(0)
    built = trainer(lora(tiny_model), tiny_tokenizer, rows(encoder()), str(tmp_path), label_smoothing=0.2)
    with torch.no_grad():  # move the policy away from the reference (the adapter-disabled model): d != 0
        for name, parameter in built.model.named_parameters():
            if "lora_B.default" in name:
                parameter.normal_(std=0.5)
    inputs = built._prepare_inputs(next(iter(built.get_train_dataloader())))
    with torch.no_grad():
        conservative = built._compute_loss(built.model, inputs, False)
        margin = built._metrics["train"]["rewards/margins"][-1]  # mean of b * d over the batch
        built.label_smoothing = 0.0
        plain = built._compute_loss(built.model, inputs, False)
    assert abs(margin) > 1e-4
    assert float(conservative) == pytest.approx(float(plain) + 0.2 * margin, rel=1e-4, abs=1e-5)


def test_conservative_dpo_refuses_loss_types_that_share_its_function():
    from ft_core_dpo.trainer import conservative_functional

    with pytest.raises(ValueError, match="cannot be combined with robust"):
        conservative_functional(0.1, ["sigmoid", "robust"])
