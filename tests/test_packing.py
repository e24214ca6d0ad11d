"""Padding-free packing (``data.packing``): packed and padded batches train the same tokens the same way, packed
rows never see each other, the token-budget sampler keeps the padded run's rows and tokens per step, and runs
pack end to end (sft, pt) and resume onto exactly the batches left."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ft_core.api import IGNORE_INDEX, RunCancelled, TrainingLogger
from ft_core.api.errors import ConfigError, FtCoreError
from ft_core.api.hookspecs import hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.cli import main
from ft_core.engine.config.rules import rule
from ft_core.engine.run.runner import load_and_validate, run_training
from ft_core.engine.training.callbacks import CANCEL_FILE
from ft_core.engine.training.packing import TokenBudgetBatchSampler, packing_collator
from ft_core.testing import tiny_model


# ------------------------------------------------------------------------------------------------ model level
def _rows(tokenizer, lengths=(9, 17, 5, 12), seed=0) -> list[dict[str, list[int]]]:
    """Rows like the sft stage's: a masked prompt, then trained answer tokens."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(5, len(tokenizer), (n,), generator=generator).tolist()
        rows.append(
            {"input_ids": ids, "labels": [IGNORE_INDEX] * (n // 3) + ids[n // 3 :], "attention_mask": [1] * n}
        )
    return rows


def _padded(tokenizer, rows):
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")(
        [dict(r) for r in rows]
    )


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss of every trained position (the model's own shift: logits[t] predicts labels[t + 1])."""
    logits, labels = logits[..., :-1, :].reshape(-1, logits.shape[-1]), labels[..., 1:].reshape(-1)
    keep = labels != IGNORE_INDEX
    return torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep], reduction="none")


def test_the_packing_collator_makes_one_row_with_positions_per_sample(tiny_tokenizer):
    rows = _rows(tiny_tokenizer, (3, 4))
    batch = packing_collator()(rows)
    assert set(batch) == {
        "input_ids",
        "labels",
        "position_ids",
    }  # no attention mask: it would undo the packing
    assert batch["input_ids"].tolist() == [rows[0]["input_ids"] + rows[1]["input_ids"]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 3]]
    labels = batch["labels"][0].tolist()
    assert labels[3] == IGNORE_INDEX  # the 2nd row's first token is not predicted from the 1st row
    assert labels[:3] == [IGNORE_INDEX, *rows[0]["labels"][1:]] and labels[4:] == rows[1]["labels"][1:]
    varlen = packing_collator(varlen_kwargs=True)(rows)
    assert varlen["cu_seq_lens_q"].tolist() == [0, 3, 7] and varlen["max_length_q"] == 4


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_and_padded_batches_give_the_same_loss_and_gradients(tiny_tokenizer, attention):
    model = tiny_model(tiny_tokenizer, attn_implementation=attention)
    model.config.use_cache = False
    model.train()
    rows = _rows(tiny_tokenizer)
    padded, packed = _padded(tiny_tokenizer, rows), packing_collator()(rows)

    results = []
    for batch in (padded, packed):
        model.zero_grad()
        output = model(**batch)
        output.loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        results.append((output.loss.item(), _token_losses(output.logits.detach(), batch["labels"]), grads))
    (loss_pad, tokens_pad, grads_pad), (loss_pack, tokens_pack, grads_pack) = results
    trained = sum(len(r["input_ids"]) - len(r["input_ids"]) // 3 for r in rows)
    assert tokens_pad.numel() == tokens_pack.numel() == trained
    assert torch.allclose(tokens_pad, tokens_pack, atol=1e-3)  # every trained token, the same loss
    assert abs(loss_pad - loss_pack) < 1e-3
    for name, grad in grads_pad.items():
        assert torch.allclose(grad, grads_pack[name], rtol=1e-3, atol=1e-6), name


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_no_packed_row_attends_to_another(tiny_tokenizer, attention):
    model = tiny_model(tiny_tokenizer, attn_implementation=attention)
    model.config.use_cache = False
    model.eval()
    rows = _rows(tiny_tokenizer, (8, 6, 7))
    changed = [dict(r) for r in rows]
    changed[0] = {**rows[0], "input_ids": [(t + 7) % len(tiny_tokenizer) for t in rows[0]["input_ids"]]}
    with torch.no_grad():
        before = model(**packing_collator()(rows)).logits[0]
        after = model(**packing_collator()(changed)).logits[0]
        # the same concatenation without per-row positions: the later rows do see the first
        flat = {"input_ids": packing_collator()(rows)["input_ids"]}
        flat_changed = {"input_ids": packing_collator()(changed)["input_ids"]}
        leaked = (model(**flat).logits[0, 8:] - model(**flat_changed).logits[0, 8:]).abs().max()
    assert not torch.allclose(before[:8], after[:8])  # row A did change
    assert torch.equal(before[8:], after[8:])  # rows B and C did not notice
    assert leaked > 1e-3  # (the check has teeth: without packing they would)


# ------------------------------------------------------------------------------------------------ sampler
def test_the_token_budget_sampler_keeps_the_rows_and_tokens_of_the_padded_run():
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(10, 500, (203,), generator=generator).tolist()
    sampler = TokenBudgetBatchSampler(lengths, batch_size=8, seed=42)
    assert len(sampler) == math.ceil(203 / 8)  # as many steps as the padded run
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) and all(batches)
        assert sorted(i for b in batches for i in b) == list(range(203))  # every row exactly once
        tokens = [sum(lengths[i] for i in b) for b in batches]
        assert sum(tokens) / len(tokens) == pytest.approx(sum(lengths) / math.ceil(203 / 8))
        assert max(tokens) - min(tokens) <= 2 * max(lengths)  # cut at equal token shares
        epochs.append(batches)
        sampler.set_epoch(epoch)
        assert list(sampler) == batches  # the same (seed, epoch), the same batches: resumable
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    other = TokenBudgetBatchSampler(lengths, batch_size=8, seed=7)
    assert list(other) != epochs[0]


def test_the_token_budget_sampler_takes_an_explicit_budget():
    lengths = [100] * 40
    sampler = TokenBudgetBatchSampler(lengths, budget=450, seed=0)
    assert len(sampler) == math.ceil(4000 / 450)
    tokens = [sum(lengths[i] for i in b) for b in sampler]
    assert sum(tokens) == 4000 and max(tokens) <= 500
    assert len(TokenBudgetBatchSampler([5, 5], budget=1)) == 2  # never more batches than rows


# ------------------------------------------------------------------------------------------------ runs
def _recorder() -> tuple[types.ModuleType, list[dict]]:
    """A plugin recording every micro-batch the trainer trains on (token ids, and which inputs it got)."""
    seen: list[dict] = []
    module = types.ModuleType("batch_recorder")

    @hookimpl
    def ft_before_train(trainer, run):
        original = trainer.training_step

        def training_step(model, inputs, *args, **kwargs):
            seen.append({"keys": sorted(inputs), "ids": inputs["input_ids"].tolist()})
            return original(model, inputs, *args, **kwargs)

        trainer.training_step = training_step

    module.ft_before_train = ft_before_train
    module.ft_activate_by_default = hookimpl(lambda config: "records every run's batches")
    return module, seen


def _plugins(*extra: types.ModuleType) -> object:
    """The plugins these runs use (and ``extra``), not every installed one: a plugin in the making elsewhere in
    the workspace must not fail them."""
    import ft_core_adamw
    import ft_core_dpo
    import ft_core_lora
    import ft_core_pt
    import ft_core_sft

    modules = [ft_core_sft, ft_core_pt, ft_core_dpo, ft_core_lora, ft_core_adamw, *extra]
    return load_plugins(strict=True, entry_points=False, extra=[(m, m.__name__) for m in modules])


def _train(path: Path, overrides=(), plugins=None) -> Path:
    plugins = plugins or _plugins()
    return run_training(load_and_validate(str(path), list(overrides), plugins), plugins)


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("stage", "dataset"),
    [("sft", "identity"), ({"name": "pt", "packing": False}, "c4_demo")],
    ids=["sft", "pt"],
)
def test_a_run_packs_with_data_packing_true(make_config, tmp_path, stage, dataset, capsys):
    recorder, seen = _recorder()
    path = make_config(
        stage=stage,
        data={"dataset": [dataset], "packing": True, "max_samples": 12},
        training={"max_steps": -1, "num_train_epochs": 1, "per_device_train_batch_size": 3},
    )
    run = _train(path, plugins=_plugins(recorder))
    assert "packing: on (sdpa, block-causal mask)" in capsys.readouterr().err
    assert len(seen) == math.ceil(12 / 3)  # the padded run's steps
    assert all(b["keys"] == ["input_ids", "labels", "position_ids"] and len(b["ids"]) == 1 for b in seen)
    manifest = _manifest(run)
    assert manifest["status"] == "completed"
    assert manifest["decisions"]["packing"]["value"]["batches_per_epoch"] == 4
    trained = sum(len(b["ids"][0]) for b in seen)
    assert manifest["metrics"]["num_input_tokens_seen"] == trained  # counted without an attention mask
    assert math.isfinite(manifest["metrics"]["train_loss"])


def test_a_run_hands_the_prepared_row_lengths_to_the_memory_estimate(make_config):
    from ft_core.engine.training.packing import row_lengths

    seen: list = []
    recorder = types.ModuleType("lengths_recorder")

    @hookimpl
    def ft_before_train(trainer, run):
        seen.append((list(run.plan.row_lengths), row_lengths(trainer.train_dataset)))

    recorder.ft_before_train = ft_before_train
    recorder.ft_activate_by_default = hookimpl(lambda config: "records the row lengths")
    _train(make_config(training={"max_steps": 1}), plugins=_plugins(recorder))
    assert seen and seen[0][0] == seen[0][1] and len(seen[0][0]) > 1


def test_sequence_lengths_take_the_prompt_and_its_longest_answer():
    from datasets import Dataset

    from ft_core.engine.training.packing import sequence_lengths

    pairs = {"prompt_ids": [[1, 2, 3], [4]], "chosen_ids": [[5], [6, 7, 8, 9]], "rejected_ids": [[1, 2], [3]]}
    assert sequence_lengths(Dataset.from_dict(pairs)) == [5, 5]
    # rm: each answer holds its prompt
    whole_pairs = {"chosen_ids": [[1, 2, 3]], "rejected_ids": [[1, 2, 3, 4]]}
    assert sequence_lengths(Dataset.from_dict(whole_pairs)) == [4]
    unpaired = {"prompt_ids": [[1, 2]], "completion_ids": [[3, 4, 5]], "label": [True]}
    assert sequence_lengths(Dataset.from_dict(unpaired)) == [5]
    causal = {"input_ids": [[1, 2, 3, 4], [5]], "labels": [[1, 2, 3, 4], [5]]}
    assert sequence_lengths(Dataset.from_dict(causal)) == [4, 1]
    assert sequence_lengths(Dataset.from_dict({"text": ["a"]})) == []

    class Rows(list):  # rows without an Arrow table are read one by one
        column_names = ("prompt_ids", "chosen_ids", "rejected_ids")

    rows = Rows([{"prompt_ids": [1, 2, 3], "chosen_ids": [5], "rejected_ids": [1, 2]}])
    assert sequence_lengths(rows) == [5]


def test_the_cli_runs_a_packed_sft_run(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("FT_CORE_STRICT", "0")  # a plugin in the making elsewhere must not fail this run
    path = make_config(data={"packing": True}, training={"max_steps": 2})
    assert main(["run", str(path)]) == 0
    assert _manifest(tmp_path / "run")["decisions"]["packing"]["value"]["attention"] == "sdpa"


def test_auto_does_not_pack_on_the_cpu(make_config, capsys):
    recorder, seen = _recorder()
    _train(make_config(), plugins=_plugins(recorder))
    assert "packing: off (auto packs on GPU runs only" in capsys.readouterr().err
    assert all("attention_mask" in b["keys"] and "position_ids" not in b["keys"] for b in seen)


def test_packing_is_refused_where_it_cannot_work(make_config):
    stage = SimpleNamespace(name="rm", component=object())  # a stage that neither packs rows nor batches
    config = SimpleNamespace(
        data=SimpleNamespace(packing=True, packing_tokens=None),
        model=SimpleNamespace(attn_implementation="auto"),
        one=lambda kind: stage,
    )
    assert rule("data.packing").check(SimpleNamespace(config=config)) == [
        "data.packing: the rm stage does not support padding-free packing; set data.packing: auto or false"
    ]
    with pytest.raises(ConfigError, match=r"data.packing_tokens: must be >= 1"):
        load_and_validate(str(make_config(data={"packing_tokens": 0})), [], _plugins())
    with pytest.raises(ConfigError, match="cannot keep packed rows apart"):
        load_and_validate(
            str(make_config(model={"attn_implementation": "paged|sdpa"}, data={"packing": True})),
            [],
            _plugins(),
        )


def test_packing_true_with_rows_it_cannot_concatenate_is_an_error(tiny_tokenizer):
    from datasets import Dataset

    from ft_core.engine.training.packing import plan_packing

    config = _plan_config(True)
    rows = Dataset.from_dict({"input_ids": [[1, 2]], "pixel_values": [[0.0]]})
    model = tiny_model(tiny_tokenizer)
    with pytest.raises(FtCoreError, match="columns it cannot concatenate \\(pixel_values\\)"):
        plan_packing(config, _Stage(), model, rows, False, print)  # type: ignore[arg-type]
    config.data.packing = "auto"
    lines: list[str] = []
    assert plan_packing(config, _Stage(), model, rows, True, lines.append) is None  # type: ignore[arg-type]
    assert lines and lines[0].startswith("packing: off (the rows hold columns")


def _plan_config(packing, packing_tokens=None, batch_size=2, attention="sdpa"):
    return types.SimpleNamespace(
        data=types.SimpleNamespace(packing=packing, packing_tokens=packing_tokens),
        training=types.SimpleNamespace(per_device_train_batch_size=batch_size, seed=0),
        model=types.SimpleNamespace(attn_implementation=attention),
    )


class _Stage:
    supports_packing = True


def test_auto_packs_gpu_runs_with_a_varlen_kernel_or_a_small_dense_mask(tiny_tokenizer):
    from datasets import Dataset

    from ft_core.engine.training.packing import DENSE_MASK_TOKENS, plan_packing

    rows = Dataset.from_dict({"input_ids": [[1] * n for n in (3000, 5000, 7000, 5000)]})
    lines: list[str] = []

    def plan(model, packing="auto", gpu=True, **kwargs):
        return plan_packing(_plan_config(packing, **kwargs), _Stage(), model, rows, gpu, lines.append)  # type: ignore[arg-type]

    sdpa = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    assert plan(sdpa, gpu=False) is None and "auto packs on GPU runs only" in lines[-1]
    import torch

    try:
        on = plan(sdpa)
        assert not torch.backends.cuda.cudnn_sdp_enabled()  # cuDNN plans per shape: packed GPU runs avoid it
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)
    assert (
        on is not None
        and on.sampler.num_batches == 2
        and "packing: on (sdpa, block-causal mask)" in lines[-2]
        and "without the cuDNN backend" in lines[-1]
    )
    assert "cu_seq_lens_q" not in on.collator([{"input_ids": [1, 2]}])
    assert plan(sdpa, packing_tokens=20000) is None  # one batch of 20,000 tokens: more than auto allows
    assert f"auto packs up to {DENSE_MASK_TOKENS}" in lines[-1]
    assert plan(sdpa, packing=True, packing_tokens=20000) is not None  # true packs anyway
    assert plan(tiny_model(tiny_tokenizer, attn_implementation="eager")) is None and "eager" in lines[-1]
    flash = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    flash.config._attn_implementation_internal = "flash_attention_2"  # as loaded with flash-attn on a GPU
    varlen = plan(flash, packing_tokens=20000)
    assert varlen is not None and "(flash_attention_2, varlen kernel)" in lines[-1]
    assert varlen.collator([{"input_ids": [1, 2]}, {"input_ids": [3]}])["cu_seq_lens_k"].tolist() == [0, 2, 3]


def test_auto_switches_packed_sdpa_gpu_runs_to_the_varlen_kernel(tiny_tokenizer, monkeypatch):
    from datasets import Dataset

    from ft_core.engine.models import varlen_attention
    from ft_core.engine.training.packing import plan_packing

    rows = Dataset.from_dict({"input_ids": [[1] * n for n in (3000, 5000, 7000, 5000)]})
    lines: list[str] = []

    def plan(model, attention="auto", **kwargs):
        config = _plan_config("auto", attention=attention, **kwargs)
        return plan_packing(config, _Stage(), model, rows, True, lines.append)  # type: ignore[arg-type]

    unavailable = plan(tiny_model(tiny_tokenizer, attn_implementation="sdpa"))  # this machine has no CUDA GPU
    assert unavailable is not None and unavailable.attention == "sdpa"
    assert "torch_varlen unavailable: no CUDA GPU" in lines[0]
    monkeypatch.setattr(varlen_attention, "unavailable_reason", lambda dtype, head_dim=None: None)
    explicit = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    assert plan(explicit, attention="sdpa").attention == "sdpa"  # an explicit sdpa is used as given
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    switched = plan(model, packing_tokens=20000)  # no dense mask: large packed batches are fine
    assert switched is not None and switched.attention == "torch_varlen"
    assert model.config._attn_implementation == "torch_varlen"
    assert any("attention: torch_varlen for packed rows" in line for line in lines)
    assert switched.collator([{"input_ids": [1, 2]}, {"input_ids": [3]}])["cu_seq_lens_q"].tolist() == [
        0,
        2,
        3,
    ]
    capped = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    capped.config.attn_logit_softcapping = 50.0
    assert plan(capped).attention == "sdpa"
    assert any("torch_varlen unavailable: the model soft-caps its attention logits" in line for line in lines)
    no_flash = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    no_flash._supports_flash_attn = False  # model code without flash attention's varlen path
    assert plan(no_flash).attention == "sdpa"
    assert any(
        "torch_varlen unavailable: LlamaForCausalLM does not support flash-attention" in x for x in lines
    )


def test_merging_accumulation_packs_each_steps_rows_into_one_micro_batch(tiny_tokenizer):
    from datasets import Dataset

    from ft_core.engine.training.packing import plan_packing

    rows = Dataset.from_dict({"input_ids": [[1] * n for n in (30, 50, 70, 50, 20, 10, 40, 60)]})
    lines: list[str] = []
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    single = plan_packing(_plan_config(True), _Stage(), model, rows, False, lines.append)  # type: ignore[arg-type]
    merged = plan_packing(
        _plan_config(True), _Stage(), model, rows, False, lines.append, merge_accumulation=2
    )  # type: ignore[arg-type]
    assert single.sampler.num_batches == 4 and merged.sampler.num_batches == 2
    assert merged.manifest()["merged_accumulation_steps"] == 2
    assert "2 micro-batches of 2 rows per batch merged into one step" in lines[-1]
    assert sorted(i for batch in merged.sampler for i in batch) == list(range(8))


@pytest.mark.parametrize(("setting", "merged"), [(True, 3), (False, 1), ("auto", 1)])
def test_a_packed_run_merges_its_accumulation_steps_when_asked(make_config, setting, merged):
    recorder, seen = _recorder()
    path = make_config(
        data={"packing": True, "packing_merge_accumulation": setting, "max_samples": 12},
        training={
            "max_steps": -1,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 3,
        },
    )
    run = _train(path, plugins=_plugins(recorder))
    manifest = _manifest(run)
    assert manifest["status"] == "completed"
    assert (
        manifest["decisions"]["packing"]["value"]["merged_accumulation_steps"] == merged
    )  # auto: CPU runs keep their micro-steps
    assert len(seen) == math.ceil(12 / 2) // merged  # micro-batches seen
    assert manifest["metrics"]["num_input_tokens_seen"] == sum(len(b["ids"][0]) for b in seen)
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 2  # optimizer steps: 12 rows / (2 x 3), merged or not


def _cancel_at(step: int) -> types.ModuleType:
    """A logger whose callback asks the run to cancel (writes the file `ft-core cancel` writes) when ``step``
    begins."""
    from transformers import TrainerCallback

    class Canceller(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step - 1:
                (Path(args.output_dir) / CANCEL_FILE).touch()

    class CancelLogger(TrainingLogger):
        def callback(self, options, run_dir):
            return Canceller()

    module = types.ModuleType("cancel_plugin")

    @hookimpl
    def ft_register_loggers(register):
        register("canceller", CancelLogger())

    module.ft_register_loggers = ft_register_loggers
    return module


def test_a_resumed_packed_run_trains_exactly_the_batches_left(make_config, tmp_path):
    settings = dict(
        data={"packing": True, "max_samples": 12},
        training={
            "max_steps": -1,
            "num_train_epochs": 2,
            "per_device_train_batch_size": 2,
            "save_steps": 100,
        },
    )
    recorder, whole = _recorder()
    _train(make_config("whole.yaml", **settings), plugins=_plugins(recorder))
    assert len(whole) == 12  # 6 steps an epoch, 2 epochs

    settings["training"] = {**settings["training"], "output_dir": str(tmp_path / "interrupted")}
    path = make_config("interrupted.yaml", **settings, loggers=["canceller"])
    recorder, first = _recorder()
    plugins = _plugins(recorder, _cancel_at(8))
    with pytest.raises(RunCancelled, match="cancelled at step 8"):
        _train(path, plugins=plugins)  # stopped in the second epoch
    recorder, rest = _recorder()
    run = _train(path, ["loggers=[]"], plugins=_plugins(recorder))
    assert _manifest(run)["resumed_from"].endswith("checkpoint-8")
    assert [b["ids"] for b in first] == [b["ids"] for b in whole[:8]]
    assert [b["ids"] for b in rest] == [b["ids"] for b in whole[8:]]


TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_two_processes_share_the_packed_batches(make_config, tmp_path):
    path = make_config(
        data={"packing": True, "max_samples": 12},
        training={"max_steps": -1, "num_train_epochs": 1, "per_device_train_batch_size": 2},
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "FT_CORE_STRICT": "0"}
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", "29541", "-m", "ft_core.cli", "run"]
    double = subprocess.run([*command, str(path)], env=env, capture_output=True, text=True, timeout=600)
    assert double.returncode == 0, double.stderr[-3000:]
    manifest = _manifest(tmp_path / "run")
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert (
        manifest["decisions"]["packing"]["value"]["batches_per_epoch"] == 6 and state["global_step"] == 3
    )  # 3 on each process
    # every row once over both processes: the tokens seen (gathered) are all the rows' tokens, none twice
    assert (
        manifest["metrics"]["num_input_tokens_seen"]
        == manifest["decisions"]["packing"]["value"]["tokens_per_epoch"]
    )
