"""Memory-aware activation checkpointing (``training.gradient_checkpointing: auto | true | false | offload``): the
estimate, the decision, how it reaches the model and the TrainingArguments, and that reentrant and non-reentrant
checkpointing give the gradients of an unchecked model (LoRA and full). Checkpointing chosen per forward pass: the
costs the plan keeps, the choice for a pass of given tokens, passes of one micro-step counted together, and on a
tiny model that the layers' flags follow each pass's tokens while the gradients stay those of an unchecked model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, TrainingArguments

from ft_core.api.errors import ConfigError
from ft_core.bootstrap import load_plugins
from ft_core.engine.models.loader import prepare_for_training
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.runner import load_and_validate
from ft_core.engine.training import checkpointing
from ft_core.engine.training.arguments import training_arguments_kwargs
from ft_core.engine.training.batch_checkpointing import ATTRIBUTE, BatchCheckpointing, BatchCosts
from ft_core.engine.training.callbacks import checkpointing_callback
from ft_core.engine.training.checkpointing import (
    GIB,
    CheckpointingPlan,
    MemoryEstimate,
    decide,
    estimate_memory,
    micro_batch,
    plan_for_run,
)
from ft_core.testing.tiny import tiny_model, tiny_tokenizer

#: Llama 3 8B's shape (no weights: the config alone).
LLAMA3_8B = AutoConfig.for_model(
    "llama",
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    tie_word_embeddings=False,
)


# ---------------------------------------------------------------------------------------------- the estimate
def test_the_estimate_counts_the_parameters_of_a_known_model():
    estimate = estimate_memory(LLAMA3_8B, batch_size=1, seq_len=4096, dtype_bytes=2, full_training=True)
    params = estimate.weights / 2
    assert params == pytest.approx(8.03e9, rel=0.01)  # Llama 3 8B has 8.03 B parameters
    assert estimate.gradients == params * 2 and estimate.optimizer == params * 8
    # per layer and token: 4 h + 3 q + 3 kv + 4 i elements, bf16
    per_token = 4 * 4096 + 3 * 4096 + 3 * 1024 + 4 * 14336
    assert estimate.layer_activations == 4096 * per_token * 2
    assert estimate.layer_input == 4096 * 4096 * 2
    assert estimate.logits == 4096 * 128256 * (2 + 8)


def test_lora_trains_few_parameters_but_keeps_every_activation():
    full = estimate_memory(LLAMA3_8B, batch_size=2, seq_len=2048, dtype_bytes=2, full_training=True)
    lora = estimate_memory(
        LLAMA3_8B, batch_size=2, seq_len=2048, dtype_bytes=2, full_training=False, adapter_rank=16
    )
    assert lora.weights == full.weights
    assert lora.gradients + lora.optimizer < 0.02 * (full.gradients + full.optimizer)
    assert lora.activations(None) == full.activations(None)


def test_checkpointing_fewer_layers_keeps_more_activations():
    estimate = estimate_memory(LLAMA3_8B, batch_size=1, seq_len=4096, dtype_bytes=2, full_training=False)
    kept = [estimate.activations(n) for n in (1, 2, 4, 32)]
    assert kept == sorted(kept) and kept[-1] < estimate.activations(None)
    assert estimate.activations(1, offload=True) < estimate.activations(1)
    fused = estimate_memory(
        LLAMA3_8B, batch_size=1, seq_len=4096, dtype_bytes=2, full_training=False, fused_loss=True
    )
    assert fused.logits == 0


# ---------------------------------------------------------------------------------------------- the decision
def _estimate(layers=10) -> MemoryEstimate:
    """States 10 GiB; per layer 1 GiB of activations or 0.1 GiB of input; logits 1 GiB."""
    return MemoryEstimate(
        weights=8 * GIB,
        gradients=1 * GIB,
        optimizer=1 * GIB,
        layer_activations=1 * GIB,
        layer_input=0.1 * GIB,
        logits=1 * GIB,
        layers=layers,
        tokens=4096,
    )


def _free_for(budget_gib: float) -> float:
    """The free memory that leaves ``budget_gib`` for activations after the states of :func:`_estimate`."""
    return (budget_gib * GIB + checkpointing.RESERVE_BYTES + 10 * GIB) / checkpointing.SAFETY


def test_off_when_every_activation_fits():
    plan = decide(_estimate(), _free_for(11.5), reentrant=True)
    assert plan.mode == "off" and plan.kwargs() is None
    assert plan.log_line().startswith("gradient checkpointing: off (the step fits without it; free ")


def test_selective_checkpoints_as_few_layers_as_fit():
    # every 2nd layer: 5 kept (5 GiB) + 5 inputs (0.5) + 1 logits = 6.5 GiB; every 3rd: 6 + 0.4 + 1 = 7.4 GiB
    plan = decide(_estimate(), _free_for(7), reentrant=True)
    assert (plan.mode, plan.every_n_layers) == ("selective", 2)
    assert plan.kwargs() == {"use_reentrant": True, "every_n_layers": 2}
    assert "on, every 2 layers, reentrant" in plan.log_line()


def test_every_layer_when_only_that_fits_then_offload():
    assert decide(_estimate(), _free_for(3.1), reentrant=False).mode == "on"
    plan = decide(_estimate(), _free_for(1), reentrant=False)
    assert plan.mode == "offload" and plan.kwargs() == {"use_reentrant": False, "offload": True}
    assert plan.numbers["with offload"] == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------- the run's plan
def _config(
    setting="auto",
    reentrant=None,
    full=False,
    batch=2,
    cutoff=512,
    packing=False,
    packing_tokens=None,
    accumulation=1,
    budget=None,
):
    return SimpleNamespace(
        training=SimpleNamespace(
            gradient_checkpointing=setting,
            memory_budget=budget,
            gradient_checkpointing_reentrant=reentrant,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            torch_compile=False,
        ),
        data=SimpleNamespace(cutoff_len=cutoff, packing=packing, packing_tokens=packing_tokens),
        adapter=SimpleNamespace(
            component=SimpleNamespace(saves_full_model=full), options=SimpleNamespace(rank=8)
        ),
        model=SimpleNamespace(attn_implementation="auto"),
        one=lambda section: None,
    )


def test_auto_is_off_on_the_cpu():
    plan = plan_for_run(_config(), LLAMA3_8B, on_gpu=False, dtype=torch.float32)
    assert plan.mode == "off" and plan.reason == "auto on the CPU"


@pytest.mark.parametrize(
    ("setting", "full", "mode", "reentrant"),
    [(True, False, "on", True), (True, True, "on", False), (False, False, "off", False)],
)
def test_explicit_settings_are_used_as_given(setting, full, mode, reentrant):
    plan = plan_for_run(_config(setting, full=full), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16)
    assert (plan.mode, plan.reentrant) == (mode, reentrant)


def test_the_reentrant_setting_overrides_the_adapter_default():
    plan = plan_for_run(_config(True, reentrant=False), LLAMA3_8B, on_gpu=False, dtype=torch.float32)
    assert plan.kwargs() == {"use_reentrant": False}


def test_offload_is_every_layer_on_a_cpu_run():
    assert plan_for_run(_config("offload"), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16).mode == "offload"
    plan = plan_for_run(_config("offload"), LLAMA3_8B, on_gpu=False, dtype=torch.float32)
    assert plan.mode == "on" and "CPU run" in plan.reason


@pytest.mark.parametrize(("free_gib", "mode"), [(140, "off"), (60, "selective"), (40, "on"), (20, "offload")])
def test_auto_on_a_gpu_follows_the_free_memory(monkeypatch, free_gib, mode):
    """LoRA on Llama 3 8B, 2 × 4096 tokens: 15 GiB of weights and adapter states; activations 53 GiB without
    checkpointing, 33 GiB with every other layer checkpointed, 13 GiB with every layer."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_gib * GIB, 141 * GIB))
    plan = plan_for_run(_config(batch=2, cutoff=4096), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16)
    assert plan.mode == mode
    assert plan.numbers["free"] == free_gib


@pytest.mark.parametrize(
    ("budget", "mode"), [(None, "off"), (60.0, "selective"), ("30%", "on"), (20.0, "offload")]
)
def test_a_memory_budget_picks_the_fastest_mode_that_fits_it(monkeypatch, budget, mode):
    """The same run on a card with 140 GiB free: the budget, not the card, bounds the plan (30% of 141 GiB = 42)."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (140 * GIB, 141 * GIB))
    config = _config(batch=2, cutoff=4096, budget=budget)
    plan = plan_for_run(config, LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16)
    assert plan.mode == mode
    if budget is None:
        assert "memory_budget" not in plan.numbers and "within" not in plan.reason
    else:
        assert plan.reason.endswith("within training.memory_budget")
        assert plan.numbers["memory_budget"] == pytest.approx(
            60 if budget == 60.0 else 42.3 if budget == "30%" else 20
        )


def test_a_budget_above_the_free_memory_leaves_the_free_memory_in_charge(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20 * GIB, 141 * GIB))
    plan = plan_for_run(
        _config(batch=2, cutoff=4096, budget=100.0), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16
    )
    assert plan.mode == "offload" and "within" not in plan.reason


def test_a_budget_larger_than_the_card_is_refused_before_loading(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * GIB, 80 * GIB))
    with pytest.raises(
        ConfigError, match=r"training.memory_budget: 100 GiB is more than this GPU's 80.0 GiB"
    ):
        plan_for_run(_config(budget=100.0), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16)


def test_a_merged_micro_batch_fits_the_budget_less_what_the_process_holds(monkeypatch):
    """60 GiB free, 4,300 tokens without checkpointing need about 28 GiB: they fit, not within a 40 GiB budget of
    which the loaded weights (16 GiB) hold part."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (60 * GIB, 141 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 16 * GIB)
    model = SimpleNamespace(config=LLAMA3_8B, parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]))
    plan = checkpointing.explicit_plan(False, reentrant=True)
    assert checkpointing.merged_batch_fits(_config(False), model, plan, 4300)
    assert not checkpointing.merged_batch_fits(_config(False, budget=40.0), model, plan, 4300)


def test_a_fused_loss_leaves_the_logits_out_of_the_merged_estimate():
    """8,600 tokens with checkpointing on: ~2 GiB of checkpointed inputs and one layer, ~10 GiB of logits and
    their fp32 copies; with a fused linear cross-entropy (Liger's) there are no logits to hold."""
    from ft_core.api import mark_fused_loss

    plain = SimpleNamespace(config=LLAMA3_8B, parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]))
    fused = SimpleNamespace(config=LLAMA3_8B, parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]))
    mark_fused_loss(fused)
    plan = checkpointing.explicit_plan(True, reentrant=True)
    assert not checkpointing.merged_batch_fits(_config(True), plain, plan, 8600, free=8 * GIB)
    assert checkpointing.merged_batch_fits(_config(True), fused, plan, 8600, free=8 * GIB)


def test_the_fixed_reserve_comes_off_the_card_not_off_the_budget():
    """The reserve (CUDA context, workspaces) is not allocated memory, which the budget bounds."""
    assert checkpointing.usable(80 * GIB) == 80 * GIB * checkpointing.SAFETY - checkpointing.RESERVE_BYTES
    assert checkpointing.usable(80 * GIB, 2.5 * GIB) == 2.5 * GIB * checkpointing.SAFETY
    assert (
        checkpointing.usable(2 * GIB, 40 * GIB)
        == 2 * GIB * checkpointing.SAFETY - checkpointing.RESERVE_BYTES
    )


@pytest.mark.parametrize(
    ("free_gib", "setting", "fits"),
    [(60, False, True), (30, False, False), (20, True, True), (5, True, False)],
)
def test_a_merged_packed_micro_batch_must_fit_with_the_plan(free_gib, setting, fits):
    """Llama-3-8B shape, LoRA bf16, a merged micro-batch of 4,300 tokens (the reference workload's two packed
    micro-batches): about 28 GiB of activations and logits kept without checkpointing, 7 GiB with it (5 of them
    the logits)."""
    model = SimpleNamespace(config=LLAMA3_8B, parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]))
    plan = checkpointing.explicit_plan(setting, reentrant=True)
    config = _config(setting)
    assert checkpointing.merged_batch_fits(config, model, plan, 4300, free=free_gib * GIB) is fits


def test_micro_batch_tokens_follow_batch_and_cutoff_or_a_packing_budget():
    assert micro_batch(_config(batch=4, cutoff=1024)) == (4, 1024)
    assert micro_batch(_config(packing="auto", packing_tokens=16384)) == (1, 16384)
    assert micro_batch(_config(packing=True)) == (2, 512)  # no budget: batch x cutoff_len bounds it
    assert micro_batch(_config(packing=False, packing_tokens=16384)) == (2, 512)


def test_a_pairwise_stage_counts_both_answers_of_each_row():
    # rm / dpo / orpo / cpo forward chosen and rejected side by side: 4 rows are 8 sequences (an rm run of the
    # Llama-3-8B shape ran out of an 80 GB card when auto planned for 4)
    pairs = _config(batch=4, cutoff=2048)
    pairs.stage = SimpleNamespace(component=SimpleNamespace(sequences_per_row=2))
    assert micro_batch(pairs) == (8, 2048)
    assert micro_batch(pairs, [100, 700]) == (8, 700)
    pairs.data.packing, pairs.data.packing_tokens = "auto", 16384  # no token budget for padded pairs
    assert micro_batch(pairs) == (8, 2048)


def test_the_prepared_rows_tighten_the_micro_batch_bound():
    short = [100, 300, 120, 80, 200, 90]  # the longest 300 of a 512 cutoff
    assert micro_batch(_config(batch=2, cutoff=512), short) == (2, 300)  # padded to the longest row
    # packed: 3 batches of the epoch's 890 tokens, at most a share (297) plus one row (300): under 2 x 300
    assert micro_batch(_config(batch=2, cutoff=512, packing="auto"), short) == (2, 300)
    even = [300] * 6  # a share (600) plus one row is more than 2 x 300: the packed bound counts
    assert micro_batch(_config(batch=2, cutoff=512, packing="auto"), even) == (1, 900)
    assert micro_batch(_config(batch=2, cutoff=512, packing="auto", packing_tokens=1000), short) == (1, 1000)
    assert micro_batch(_config(batch=2, cutoff=256), short) == (2, 256)  # rows are cut to cutoff_len anyway


def test_short_rows_need_no_checkpointing_where_the_cutoff_bound_would(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * GIB, 80 * GIB))
    config = _config(batch=4, cutoff=2048)
    assert plan_for_run(config, LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16).mode == "selective"
    rows = [400] * 100  # alpaca-like rows far below the cutoff
    assert plan_for_run(config, LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16, lengths=rows).mode == "off"


# ---------------------------------------------------------------------------------------------- the model
def _lora_model(seed=0):
    from peft import LoraConfig, get_peft_model

    model = tiny_model(tiny_tokenizer(), num_hidden_layers=4, seed=seed).train()
    return model, lambda m: get_peft_model(
        m, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"])
    )


def _gradients(plan: CheckpointingPlan | bool, lora: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model, wrap = _lora_model()
    if lora:
        model.requires_grad_(False)
    prepare_for_training(model, plan)
    if lora:
        model = wrap(model)
        for name, parameter in model.named_parameters():  # B starts at zero: A would get no gradient
            if "lora_B" in name:
                torch.nn.init.normal_(parameter)
    ids = torch.randint(3, 100, (2, 24))
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    return grads


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_reentrant_and_non_reentrant_give_the_gradients_of_no_checkpointing(lora):
    reference = _gradients(False, lora)
    for plan in (
        CheckpointingPlan("on", reentrant=True),
        CheckpointingPlan("on", reentrant=False),
        CheckpointingPlan("selective", reentrant=True, every_n_layers=2),
    ):
        grads = _gradients(plan, lora)
        assert grads.keys() == reference.keys()
        for name in grads:
            torch.testing.assert_close(grads[name], reference[name], rtol=1e-5, atol=1e-6, msg=name)


def test_freeze_tuning_backpropagates_through_the_trained_layers_only():
    """The last layer trains (freeze tuning): non-reentrant checkpointing gives the gradients of no checkpointing,
    and no gradient flows through the frozen layers below it, as in LLaMA-Factory's freeze tuning; an 8B freeze
    run was 0.61x LLaMA-Factory's speed when it did."""

    def run(plan):
        torch.manual_seed(0)
        model, _ = _lora_model()
        model.requires_grad_(False)
        model.model.layers[-1].requires_grad_(True)
        prepare_for_training(model, plan)
        backward = []
        model.model.layers[0].mlp.down_proj.register_full_backward_hook(lambda *_: backward.append(1))
        ids = torch.randint(3, 100, (2, 24))
        model(input_ids=ids, labels=ids).loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return grads, len(backward)

    reference, _ = run(False)
    grads, frozen_backward = run(CheckpointingPlan("on", reentrant=False))
    assert grads.keys() == reference.keys() and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads[name], reference[name], rtol=1e-5, atol=1e-6, msg=name)
    assert frozen_backward == 0  # no gradient flows below the trained layer
    _, frozen_backward = run(CheckpointingPlan("on", reentrant=True))
    assert frozen_backward == 1  # reentrant checkpoints need the inputs' gradients, down to the embeddings


def test_selective_checkpointing_marks_every_nth_layer(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, num_hidden_layers=4).train()
    prepare_for_training(model, CheckpointingPlan("selective", reentrant=True, every_n_layers=2))
    assert [layer.gradient_checkpointing for layer in model.model.layers] == [True, False, True, False]
    assert model.get_input_embeddings()(torch.tensor([[1]])).requires_grad  # reentrant needs input grads


def test_offload_hooks_each_checkpoint_and_saves_the_layer_inputs(tiny_tokenizer, monkeypatch):
    """Each checkpointed layer runs its checkpoint under the offload hooks, which see the layer's input hidden
    states (the copy to pinned memory needs a GPU: counted here, run on the GPU below)."""
    from ft_core.engine.models import offload

    packed: list[tuple[int, ...]] = []
    original = offload.AsyncHostOffload.pack

    def counting_pack(self, tensor):
        packed.append(tuple(tensor.shape))
        return original(self, tensor)  # a CPU tensor: kept as it is

    monkeypatch.setattr(offload.AsyncHostOffload, "pack", counting_pack)
    model = tiny_model(tiny_tokenizer, num_hidden_layers=3).train()
    prepare_for_training(model, CheckpointingPlan("offload", reentrant=True))
    assert all(
        getattr(layer._gradient_checkpointing_func, "ft_offloaded", False) for layer in model.model.layers
    )
    ids = torch.randint(3, 100, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    assert packed == [(2, 8, 32)] * 3  # one hidden-state input per layer
    checkpointed = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert offload.offload_checkpoints(model) == len(
        checkpointed
    )  # the layers and the model (old-style calls)
    inner = model.model.layers[0]._gradient_checkpointing_func.__wrapped__
    assert not getattr(inner, "ft_offloaded", False)  # wrapping again keeps one wrapper per layer


def test_offloading_survives_the_trainer_turning_checkpointing_on_again(tiny_tokenizer, tmp_path):

    plan = CheckpointingPlan("offload", reentrant=True)
    training = SimpleNamespace(**{f: getattr(_training_defaults(), f) for f in vars(_training_defaults())})
    kwargs = training_arguments_kwargs(TrainingArguments, training, tmp_path, False, checkpointing=plan)
    assert kwargs["activation_checkpointing_kwargs"] == {
        "use_reentrant": True
    }  # not transformers' save_on_cpu
    model = tiny_model(tiny_tokenizer, num_hidden_layers=2).train()
    prepare_for_training(model, plan)
    model.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": True}
    )  # train() does
    assert not getattr(model.model.layers[0]._gradient_checkpointing_func, "ft_offloaded", False)
    from ft_core.engine.models.offload import installed_offload

    before = installed_offload(model)
    checkpointing_callback(CheckpointingPlan("offload", reentrant=False)).on_train_begin(
        None, None, None, model=model
    )
    assert all(
        getattr(layer._gradient_checkpointing_func, "ft_offloaded", False) for layer in model.model.layers
    )
    assert (
        before is not None and installed_offload(model) is before
    )  # its arena (pinned before training) kept


def test_the_largest_steps_arena_is_pinned_before_training(tiny_tokenizer):
    from ft_core.engine.models.offload import HostArena, installed_offload, reserve_for_largest_step
    from ft_core.engine.training.checkpointing import hidden_bytes_per_token

    model = tiny_model(tiny_tokenizer, num_hidden_layers=3).train()
    assert reserve_for_largest_step(model, 100, 64, device=0) == 0  # no offloading installed: nothing to pin
    prepare_for_training(model, CheckpointingPlan("offload", reentrant=True))
    assert hidden_bytes_per_token(model) == 32 * 4  # hidden size 32, fp32
    offload = installed_offload(model)
    offload.arena = HostArena(pin=False)
    asked = reserve_for_largest_step(model, 100, hidden_bytes_per_token(model), device=0)
    assert offload.layers >= 3  # the layers (and the model itself, which old-style calls mark too)
    assert asked == int(
        100 * 128 * offload.layers * 1.25
    )  # every checkpointed input, with the step's headroom
    offload.wait_reserved()
    assert offload.arena.capacity == asked and offload.arena.allocations == 1


def test_selective_checkpointing_survives_a_trainer_without_every_n_layers(tiny_tokenizer):

    model = tiny_model(tiny_tokenizer, num_hidden_layers=4).train()
    prepare_for_training(model, CheckpointingPlan("selective", reentrant=True, every_n_layers=2))
    model.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": True}
    )  # older Trainers
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    checkpointing_callback(CheckpointingPlan("selective", reentrant=True, every_n_layers=2)).on_train_begin(
        None, None, None, model=model
    )
    assert [layer.gradient_checkpointing for layer in model.model.layers] == [True, False, True, False]


def test_plan_off_undoes_checkpointing_a_quantizer_turned_on(tiny_model):
    tiny_model.activation_checkpointing_enable()
    prepare_for_training(tiny_model, CheckpointingPlan("off"))
    assert not tiny_model.is_activation_checkpointing


# ---------------------------------------------------------------------------------------------- arguments
def test_training_arguments_carry_the_plan(tmp_path):
    training = SimpleNamespace(
        **{f: getattr(_training_defaults(), f) for f in vars(_training_defaults())},
    )
    plan = CheckpointingPlan("selective", reentrant=True, every_n_layers=3)
    kwargs = training_arguments_kwargs(TrainingArguments, training, tmp_path, False, checkpointing=plan)
    assert kwargs["activation_checkpointing"] is True
    assert kwargs["activation_checkpointing_kwargs"] == {"use_reentrant": True, "every_n_layers": 3}
    assert kwargs["torch_compile"] is False
    args = TrainingArguments(**kwargs)
    assert args.activation_checkpointing_kwargs["every_n_layers"] == 3
    off = training_arguments_kwargs(TrainingArguments, training, tmp_path, False)
    assert off["activation_checkpointing"] is False and off["activation_checkpointing_kwargs"] is None


def test_torch_compile_reaches_the_arguments_on_gpu_runs_only(tmp_path):
    training = _training_defaults()
    training.torch_compile = True
    training.use_cpu = True
    assert training_arguments_kwargs(TrainingArguments, training, tmp_path, False)["torch_compile"] is False
    training.use_cpu = False
    assert training_arguments_kwargs(TrainingArguments, training, tmp_path, False)["torch_compile"] is True


def _training_defaults():
    from ft_core.api.config import TrainingSection

    return TrainingSection(output_dir="x", use_cpu=True)


# ---------------------------------------------------------------------------------------------- config and run
@pytest.mark.parametrize("value", [True, False, "auto", "offload"])
def test_the_setting_accepts_booleans_auto_and_offload(make_config, value):
    config = load_and_validate(
        str(make_config(training={"gradient_checkpointing": value})), [], load_plugins()
    )
    assert config.training.gradient_checkpointing == value


def test_the_setting_rejects_other_words(make_config):
    with pytest.raises(ConfigError, match=r"training.gradient_checkpointing: expected .*'auto' \| 'offload'"):
        load_and_validate(str(make_config(training={"gradient_checkpointing": "always"})), [], load_plugins())


@pytest.mark.parametrize(
    ("value", "kept"), [(40, 40.0), (12.5, 12.5), ("24", 24.0), ("60%", "60%"), (" 7.5 % ", "7.5%")]
)
def test_a_memory_budget_is_gib_or_a_share_of_the_card(make_config, value, kept):
    config = load_and_validate(str(make_config(training={"memory_budget": value})), [], load_plugins())
    assert config.training.memory_budget == kept


@pytest.mark.parametrize("value", [0, -4, "150%", "0%", "lots", "60 GB"])
def test_a_bad_memory_budget_says_what_is_accepted(make_config, value):
    with pytest.raises(
        ConfigError, match=r"training: memory_budget: GiB as a positive number \(40\) or a share"
    ):
        load_and_validate(str(make_config(training={"memory_budget": value})), [], load_plugins())


def test_the_plan_records_the_budget(make_config, tmp_path):
    plugins = load_plugins()
    config = load_and_validate(str(make_config(training={"memory_budget": "50%"})), [], plugins)
    decision = EngineRun.from_config(config, plugins, tmp_path).plan.decision("memory_budget")
    assert decision.value == "50%" and decision.reason == "training.memory_budget: not used on the CPU"


def test_the_run_decides_once_logs_and_records_it(make_config, tmp_path, capsys):
    plugins = load_plugins()
    config = load_and_validate(str(make_config(training={"gradient_checkpointing": True})), [], plugins)
    run = EngineRun.from_config(config, plugins, tmp_path)
    model = run.load_model()
    assert model.base_model.model.model.layers[0].gradient_checkpointing
    args = run.training_arguments()
    assert args.activation_checkpointing and args.activation_checkpointing_kwargs == {"use_reentrant": True}
    err = capsys.readouterr().err
    assert err.count("gradient checkpointing: on, every layer, reentrant") == 1
    assert run.plan.decision("gradient_checkpointing").value["mode"] == "on"


# ---------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_offload_on_a_gpu_gives_the_gradients_of_no_checkpointing(monkeypatch):
    """Real offloading (pinned host memory, side stream) of the checkpointed layer inputs, LoRA, reentrant."""
    from ft_core.engine.models import offload

    counts: list[int] = []
    original = offload.AsyncHostOffload.unpack

    def counting_unpack(self, packed):
        counts.append(isinstance(packed, offload._Offloaded))
        return original(self, packed)

    monkeypatch.setattr(offload, "MIN_BYTES", 0)  # the tiny model's inputs are a few KB
    monkeypatch.setattr(offload.AsyncHostOffload, "unpack", counting_unpack)

    def grads(plan):
        torch.manual_seed(0)
        model, wrap = _lora_model()
        model.requires_grad_(False)
        prepare_for_training(model.cuda(), plan)
        model = wrap(model)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter)
        ids = torch.randint(3, 100, (2, 24), device="cuda")
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.float().cpu() for n, p in model.named_parameters() if p.requires_grad}

    reference = grads(CheckpointingPlan("off"))
    offloaded = grads(CheckpointingPlan("offload", reentrant=True))
    assert counts and all(counts)  # every saved layer input came back from host memory
    for name in reference:
        torch.testing.assert_close(offloaded[name], reference[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_turns_checkpointing_off_for_a_model_that_fits(make_config, tmp_path):
    plugins = load_plugins()
    config = load_and_validate(str(make_config(training={"use_cpu": None})), [], plugins)
    run = EngineRun.from_config(config, plugins, tmp_path)
    run.load_model()
    plan = run.checkpointing_plan()
    assert plan.mode == "off" and plan.reason == "the step fits without it"
    assert plan.numbers["free"] > 0


# ---------------------------------------------------------------------------------------------- the peak
def test_a_peak_past_the_budget_is_reported_with_what_to_do(monkeypatch):
    from ft_core.engine.training.memory_budget import over_budget, peak_gib

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * GIB, 140 * GIB))
    assert over_budget("50%", 69.9) is None and over_budget(None, 200.0) is None
    warning = over_budget("50%", 75.5)
    assert warning is not None and warning.startswith(
        "peak GPU memory 75.50 GiB went past training.memory_budget"
    )
    assert "(70.00 GiB)" in warning and "gradient_checkpointing: true" in warning
    if not torch.cuda.is_available():
        assert peak_gib() is None  # a CPU run reports no GPU peak


# ============================================================= checkpointing chosen per forward pass
# ---------------------------------------------------------------------------------------------- the plan's costs
def test_a_plan_that_checkpoints_keeps_what_smaller_passes_cost():
    plan = decide(_estimate(), _free_for(3.1), reentrant=True, per_batch=True)
    assert plan.mode == "on" and plan.per_batch is not None
    costs = plan.per_batch
    assert costs.budget == pytest.approx(3.1 * GIB) and costs.layers == 10
    # no checkpointing: 10 GiB of layers for 4096 tokens (logits apart: 1 GiB for 4096 tokens)
    assert dict(costs.options)[0] == pytest.approx(10 * GIB / 4096)
    assert costs.logit_bytes_per_token == pytest.approx(GIB / 4096)
    # 11 GiB for 4096 tokens without checkpointing: 3.1 GiB hold 1,154 tokens
    assert costs.largest_batch(0) == int(3.1 * 4096 / 11)
    assert costs.largest_batch(0, fused_loss=True) == int(3.1 * 4096 / 10)
    # one option per number of checkpointed layers, fewest first, down to every layer
    assert [every_n for every_n, _ in costs.options] == [0, 10, 9, 4, 3, 2, 1]
    limits = [costs.largest_batch(every_n) for every_n, _ in costs.options]
    assert limits == sorted(limits) and limits[-1] >= 4096  # every layer holds the plan's largest micro-batch
    assert plan.manifest()["per_forward_pass_tokens"]["off"] == costs.largest_batch(0)
    assert "smaller forward passes checkpoint less (tokens: off up to 1,154" in plan.log_line()


def test_selective_plans_offer_options_down_to_their_own():
    plan = decide(_estimate(), _free_for(7), reentrant=True, per_batch=True)
    assert (plan.mode, plan.every_n_layers) == ("selective", 2)
    assert [every_n for every_n, _ in plan.per_batch.options] == [0, 10, 9, 4, 3, 2]


def test_no_per_pass_costs_when_off_or_not_asked():
    assert decide(_estimate(), _free_for(11.5), reentrant=True, per_batch=True).per_batch is None
    assert decide(_estimate(), _free_for(3.1), reentrant=True).per_batch is None
    assert CheckpointingPlan("on").manifest()["per_forward_pass_tokens"] is None


def test_auto_on_a_gpu_plans_per_pass_except_with_eager_attention(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * GIB, 141 * GIB))
    plan = plan_for_run(_config(batch=2, cutoff=4096), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16)
    assert plan.mode == "on" and plan.per_batch is not None
    # a row of Llama 3 8B keeps ~5.6 MiB of activations a token and 1.2 MiB of logits: ~3,900 tokens fit in 25 GiB
    assert 2_000 < plan.per_batch.largest_batch(0) < 8192
    eager = _config(batch=2, cutoff=4096)
    eager.model.attn_implementation = "eager"  # its score matrices grow with the square of a row's length
    assert plan_for_run(eager, LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16).per_batch is None
    explicit = plan_for_run(_config(True, batch=2, cutoff=4096), LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16)
    assert explicit.per_batch is None  # true is used as given
    compiled = _config(batch=2, cutoff=4096)
    compiled.training.torch_compile = True  # flags changed inside a compiled model would recompile it
    assert plan_for_run(compiled, LLAMA3_8B, on_gpu=True, dtype=torch.bfloat16).per_batch is None


# ---------------------------------------------------------------------------------------------- the choice
def _costs() -> BatchCosts:
    """100 bytes a token without checkpointing, 40 with every 2nd layer, 10 with every layer; 1,000 bytes of room."""
    return BatchCosts(
        options=((0, 100.0), (2, 40.0), (1, 10.0)), logit_bytes_per_token=0.0, budget=1000.0, layers=4
    )


def test_each_pass_gets_the_least_recompute_that_fits():
    switcher = BatchCheckpointing(_costs(), layers=[], fallback=1, fused_loss=True)
    assert switcher.choose(10) == 0
    switcher.next_micro_step()
    assert switcher.choose(25) == 2
    switcher.next_micro_step()
    assert switcher.choose(100) == 1
    switcher.next_micro_step()
    assert switcher.choose(500) == 1  # nothing fits: the plan's own mode


def test_passes_of_one_micro_step_share_the_room():
    switcher = BatchCheckpointing(_costs(), layers=[], fallback=1, fused_loss=True)
    assert switcher.choose(8) == 0  # 800 of 1,000 bytes
    assert switcher.choose(4) == 2  # 400 more would not fit without checkpointing; 160 does
    switcher.next_micro_step()
    assert switcher.choose(8) == 0


def test_logits_count_unless_the_loss_is_fused():
    costs = BatchCosts(options=((0, 60.0), (1, 10.0)), logit_bytes_per_token=40.0, budget=1000.0, layers=4)
    assert BatchCheckpointing(costs, layers=[], fallback=1, fused_loss=False).choose(12) == 1
    assert BatchCheckpointing(costs, layers=[], fallback=1, fused_loss=True).choose(12) == 0


# ---------------------------------------------------------------------------------------------- on a model
def _grads(model: torch.nn.Module, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _tokens_costs(off_up_to: int, layers: int) -> BatchCosts:
    """No checkpointing up to ``off_up_to`` tokens, every layer beyond, for a model of ``layers`` decoder layers."""
    return BatchCosts(
        options=((0, 1.0), (1, 0.0)), logit_bytes_per_token=0.0, budget=float(off_up_to), layers=layers
    )


_CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
)


@pytest.mark.parametrize("device", ["cpu", _CUDA])
@pytest.mark.parametrize("reentrant", [False, True])
def test_the_layers_follow_each_pass_and_the_gradients_do_not_change(tiny_tokenizer, reentrant, device):
    torch.manual_seed(0)
    model = tiny_model(tiny_tokenizer, num_hidden_layers=3).to(device).train()
    short = torch.randint(5, 60, (1, 8), device=device)
    long = torch.randint(5, 60, (2, 16), device=device)
    reference = {"short": _grads(model, short), "long": _grads(model, long)}
    plan = CheckpointingPlan("on", reentrant=reentrant, per_batch=_tokens_costs(off_up_to=20, layers=3))
    prepare_for_training(model, plan)
    said: list[str] = []
    callback = checkpointing_callback(plan, said.append)
    callback.on_train_begin(SimpleNamespace(gradient_checkpointing=True), None, None, model=model)
    switcher = getattr(model, ATTRIBUTE)
    layers = list(model.model.layers)

    grads = _grads(model, short)  # 8 tokens: fits without checkpointing
    assert not any(layer.gradient_checkpointing for layer in layers)
    assert all(torch.allclose(grads[n], g, atol=1e-6) for n, g in reference["short"].items())
    assert switcher.used == 0  # the backward pass released its bytes
    grads = _grads(model, long)  # 32 tokens: every layer
    assert all(layer.gradient_checkpointing for layer in layers)
    assert all(torch.allclose(grads[n], g, atol=1e-6) for n, g in reference["long"].items())

    with torch.no_grad():  # a reference model's pass: neither checkpointed nor counted
        model(input_ids=short)
    assert switcher.used == 0 and all(layer.gradient_checkpointing for layer in layers)
    model(input_ids=short)  # a pass whose backward never runs: counted until the micro-step ends
    assert switcher.used == 8 and not layers[0].gradient_checkpointing
    model(input_ids=short)  # 8 + 8 tokens fit without checkpointing, a third pass would not
    model(input_ids=short)
    assert all(layer.gradient_checkpointing for layer in layers)
    callback.on_step_begin(None, None, None)
    assert switcher.used == 0
    callback.on_train_end(None, None, None)
    assert said == ["gradient checkpointing per forward pass: 3 off, 2 every layer"]


def test_installed_once_and_not_over_a_plugins_own_checkpointing(tiny_tokenizer):
    plan = CheckpointingPlan("on", reentrant=True, per_batch=_tokens_costs(off_up_to=20, layers=2))
    model = tiny_model(tiny_tokenizer, num_hidden_layers=2).train()
    prepare_for_training(model, plan)
    # Unsloth's plugin turns the Trainer's checkpointing off and runs its own: its layers are left alone
    checkpointing_callback(plan).on_train_begin(
        SimpleNamespace(gradient_checkpointing=False), None, None, model=model
    )
    assert getattr(model, ATTRIBUTE, None) is None
    callback = checkpointing_callback(plan)
    callback.on_train_begin(SimpleNamespace(gradient_checkpointing=True), None, None, model=model)
    first = getattr(model, ATTRIBUTE)
    checkpointing_callback(plan).on_train_begin(
        SimpleNamespace(gradient_checkpointing=True), None, None, model=model
    )
    assert getattr(model, ATTRIBUTE) is first and len(model.model.layers[0]._forward_pre_hooks) == 1
