"""The badam optimizer: one block at a time, switched on schedule; ratio mode's sparse updates; refusal with LoRA."""

import json
import warnings
from types import SimpleNamespace

import pytest
import torch
import yaml

import ft_core_badam
from ft_core.api import OptionsError, default_param_groups
from ft_core.testing.import_light import check_import_light
from ft_core_badam import BAdam, BAdamOptions

pytestmark = pytest.mark.filterwarnings("ignore:BAdam expect model")


def _build(options, model, learning_rate=1e-2):
    args = SimpleNamespace(learning_rate=learning_rate, weight_decay=0.0)
    defaults = default_param_groups(model, 0.0)
    groups = BAdam().param_groups(options, model, defaults, args) or defaults
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BAdam().create(options, [g for g in groups if g["params"]], args)


def _train_step(model, optimizer, seed):
    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(seed))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}, before


def _blocks(changed):
    return {".".join(n.split(".")[:3]) if ".layers." in n else n for n in changed}


def test_registers_badam(make_plugins):
    assert make_plugins(ft_core_badam).get("optimizer", "badam").options_schema is BAdamOptions


def test_registration_is_import_light():
    check_import_light("ft_core_badam")


@pytest.mark.parametrize(
    ("switch_mode", "expected"),
    [
        ("ascending", ["model.layers.0"] * 3 + ["model.layers.1"] * 3 + ["model.layers.0"] * 2),
        ("descending", ["model.layers.1"] * 3 + ["model.layers.0"] * 3 + ["model.layers.1"] * 2),
        ("fixed", ["model.layers.0"] * 8),
    ],
)
def test_layer_mode_updates_one_block_at_a_time_and_switches_on_schedule(tiny_model, switch_mode, expected):
    optimizer = _build(BAdamOptions(mode="layer", switch_every=3, switch_mode=switch_mode), tiny_model)
    trained = []
    for step in range(len(expected)):
        changed, _ = _train_step(tiny_model, optimizer, step)
        blocks = _blocks(changed)
        assert len(blocks) == 1, f"step {step}: several blocks updated: {sorted(blocks)}"
        trained.append(blocks.pop())
    assert trained == expected
    state_params = [p for p in optimizer.base_optimizer.state if optimizer.base_optimizer.state[p]]
    layer = dict(tiny_model.named_parameters())
    assert len(state_params) <= sum(1 for n in layer if n.startswith(expected[-1] + ".")), (
        "Adam's state is kept for the active block only"
    )


def test_layer_mode_start_block_and_random_order_visit_every_block(tiny_model):
    optimizer = _build(BAdamOptions(mode="layer", switch_every=1, switch_mode="random"), tiny_model)
    seen = [_blocks(_train_step(tiny_model, optimizer, s)[0]) for s in range(4)]
    assert all(len(b) == 1 for b in seen)
    assert set().union(*seen[:2]) == {"model.layers.0", "model.layers.1"}, "a random epoch visits every block"
    tiny_model.requires_grad_(True)  # BAdam froze the inactive blocks
    started = _build(BAdamOptions(mode="layer", switch_every=5, start_block=1), tiny_model)
    assert _blocks(_train_step(tiny_model, started, 0)[0]) == {"model.layers.1"}


def test_ratio_mode_updates_a_fraction_of_each_weight(tiny_model):
    optimizer = _build(BAdamOptions(mode="ratio", update_ratio=0.25, switch_every=2), tiny_model)
    changed, before = _train_step(tiny_model, optimizer, 0)
    named = dict(tiny_model.named_parameters())
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert q_proj in changed and "model.layers.1.mlp.down_proj.weight" in changed
    fraction = (named[q_proj] != before[q_proj]).float().mean().item()
    assert 0.0 < fraction <= 0.25 + 1e-6
    assert "model.embed_tokens.weight" not in changed


def test_a_start_block_past_the_last_is_an_error(tiny_model):
    from ft_core.api import FtCoreError

    with pytest.raises(FtCoreError, match="start_block: 2, but the model has 2 blocks"):
        _build(BAdamOptions(start_block=2), tiny_model)


def test_optimizer_conformance(tiny_model):
    from ft_core.testing.conformance_optimizers import check_optimizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_optimizer(BAdam(), BAdamOptions(switch_every=10), tiny_model)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"switch_every": 0}, "switch_every: expected an integer >= 1"),
        ({"update_ratio": 0.0}, r"update_ratio: expected a number in \(0, 1\]"),
        ({"start_block": -1}, "start_block: expected an integer >= 0"),
        ({"betas": [0.9]}, r"betas: expected two numbers"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        BAdamOptions(**values)


def _config(tmp_path, model_dir, adapter, optimizer):
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
        "adapter": adapter,
        "optimizer": optimizer,
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 3,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_badam_with_lora_is_refused_saying_what_works(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    assert main(["validate", _config(tmp_path, tiny_model_dir, {"method": "lora"}, {"name": "badam"})]) == 2
    assert (
        "use optimizer.name: adamw with lora, or badam with adapter.method: full" in capsys.readouterr().err
    )


@pytest.mark.parametrize("mode", ["layer", "ratio"])
def test_a_full_run_trains_with_badam(tmp_path, tiny_model_dir, mode):
    from ft_core.cli import main

    optimizer = {"name": "badam", "mode": mode, "switch_every": 2}
    assert main(["run", _config(tmp_path, tiny_model_dir, "full", optimizer)]) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"


def _saved_dtypes(run_dir):
    from safetensors import safe_open

    dtypes = set()
    for path in (run_dir / "model").glob("*.safetensors"):
        with safe_open(str(path), "pt") as weights:
            names = weights.keys()  # safe_open is not iterable
            dtypes |= {weights.get_slice(name).get_dtype() for name in names}
    return dtypes


@pytest.mark.parametrize(
    ("optimizer", "upcast", "dtypes"), [("badam", False, {"BF16"}), ("adamw", True, {"F32"})]
)
def test_layer_mode_keeps_bf16_weights_instead_of_upcasting_them(
    tmp_path, tiny_model_dir, optimizer, upcast, dtypes
):
    # badam keeps fp32 copies of the active block itself: upcasting the whole model would double its memory
    from ft_core.cli import main

    path = _config(tmp_path, tiny_model_dir, "full", {"name": optimizer})
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["training"]["precision"] = "bf16"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", path]) == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["decisions"]["upcast_trainable"]["value"] is upcast
    assert _saved_dtypes(tmp_path / "run") == dtypes
