"""NEFTune through lifecycle hooks: noise statistics, train/eval behaviour, hook removal, config section, a run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

import ft_core_neftune
from ft_core.api import ConfigSection, OptionsError, RunEvent
from ft_core.testing.import_light import check_import_light
from ft_core_neftune import NeftuneOptions
from ft_core_neftune.noise import _NoiseHook


def _run(tmp_path: Path, alpha: float | None) -> SimpleNamespace:
    """The parts of a RunContext the hooks read: the ``neftune`` section and the run folder."""
    sections = {"neftune": NeftuneOptions(alpha=alpha)}
    return SimpleNamespace(config=SimpleNamespace(section=sections.__getitem__), run_dir=tmp_path)


def _noise(model, input_ids):
    """What the embedding layer's output adds to the plain table lookup."""
    import torch

    embeddings = model.get_input_embeddings()
    with torch.no_grad():
        return embeddings(input_ids) - embeddings.weight[input_ids]


def _ids(model, batch: int, length: int, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)


# ------------------------------------------------------------------------------------------------ registration
def test_registers_only_the_config_section(make_plugins):
    plugins = make_plugins(ft_core_neftune)
    assert "neftune" in plugins.names("config_section")
    section = plugins.get("config_section", "neftune")
    assert isinstance(section, ConfigSection) and section.schema is NeftuneOptions
    for kind in ("model_patch", "stage", "adapter", "optimizer", "logger"):
        assert not any(r.distribution == "plugin-under-test" for r in _registrations(plugins, kind)), kind


def _registrations(plugins, kind):
    return [plugins.registration(kind, name) for name in plugins.names(kind)]


def test_registration_is_import_light():
    check_import_light("ft_core_neftune")


# --------------------------------------------------------------------------------------------------- options
def test_options_default_is_off_and_alpha_must_be_positive():
    assert NeftuneOptions().alpha is None
    assert NeftuneOptions(alpha=5.0).alpha == 5.0
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(OptionsError, match="alpha must be a number > 0"):
            NeftuneOptions(alpha=bad)


# ----------------------------------------------------------------------------------------------------- noise
def test_training_mode_adds_uniform_noise_of_the_paper_scale(tiny_model, tmp_path):
    import torch

    alpha = 5.0
    ft_core_neftune.ft_model_ready(model=tiny_model, run=_run(tmp_path, alpha), role="policy")
    tiny_model.train()
    hidden = tiny_model.config.hidden_size
    for length in (16, 64):
        noise = _noise(tiny_model, _ids(tiny_model, 8, length))
        bound = alpha / math.sqrt(length * hidden)
        magnitude = noise.abs()
        # Uniform on [-bound, bound]: never beyond it, spread over all of it, mean |noise| = bound / 2, mean 0.
        assert magnitude.max().item() <= bound * (1 + 1e-6)
        assert magnitude.max().item() > 0.95 * bound
        assert magnitude.mean().item() == pytest.approx(bound / 2, rel=0.05)
        assert abs(noise.mean().item()) < 0.05 * bound
        # Fresh noise on every forward pass.
        assert not torch.equal(noise, _noise(tiny_model, _ids(tiny_model, 8, length)))
    ft_core_neftune.detach(str(tmp_path))


def test_a_packed_batch_gets_each_samples_own_noise_scale(tiny_model, tmp_path):
    """Packed samples (one row, position ids restarting at 0) each get ``alpha / sqrt(L_i * d)`` from their own
    length, not the packed row's: the noise a sample gets does not depend on what it was packed with."""
    import torch

    alpha, lengths = 5.0, (5, 20, 39)
    ft_core_neftune.ft_model_ready(model=tiny_model, run=_run(tmp_path, alpha), role="policy")
    tiny_model.train()
    hidden = tiny_model.config.hidden_size
    input_ids = _ids(tiny_model, 1, sum(lengths))
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    seen: list = []
    handle = tiny_model.get_input_embeddings().register_forward_hook(
        lambda module, args, output: seen.append(output - module.weight[args[0]])
    )  # registered after NEFTune's hook: sees the noisy output
    with torch.no_grad():
        tiny_model(input_ids=input_ids, position_ids=positions)
    handle.remove()
    noise, start = seen[0][0], 0
    for n in lengths:
        bound = alpha / math.sqrt(n * hidden)
        magnitude = noise[start : start + n].abs()
        assert magnitude.max().item() <= bound * (1 + 1e-5)
        assert magnitude.max().item() > 0.9 * bound
        start += n
    unpacked = _noise(tiny_model, input_ids)  # no position ids: the row's own length
    assert unpacked.abs().max().item() <= alpha / math.sqrt(sum(lengths) * hidden) * (1 + 1e-5)
    ft_core_neftune.detach(str(tmp_path))


def test_eval_mode_is_untouched_and_the_model_output_changes_only_in_training(tiny_model, tmp_path):
    import torch

    input_ids = _ids(tiny_model, 2, 24)
    tiny_model.eval()
    with torch.no_grad():
        clean = tiny_model(input_ids=input_ids).logits
    ft_core_neftune.ft_model_ready(model=tiny_model, run=_run(tmp_path, 15.0), role="policy")
    assert ft_core_neftune.attached(str(tmp_path)) == 15.0
    with torch.no_grad():
        assert torch.equal(_noise(tiny_model, input_ids), torch.zeros(2, 24, tiny_model.config.hidden_size))
        assert torch.equal(tiny_model(input_ids=input_ids).logits, clean)
        tiny_model.train()  # the tiny model has no dropout: only the noise can change the output
        assert not torch.allclose(tiny_model(input_ids=input_ids).logits, clean)
    ft_core_neftune.detach(str(tmp_path))


def test_noise_keeps_gradients_flowing_to_the_embeddings(tiny_model, tmp_path):
    ft_core_neftune.ft_model_ready(model=tiny_model, run=_run(tmp_path, 5.0), role="policy")
    tiny_model.train()
    input_ids = _ids(tiny_model, 2, 12)
    tiny_model(input_ids=input_ids, labels=input_ids).loss.backward()
    assert tiny_model.get_input_embeddings().weight.grad.abs().sum().item() > 0
    ft_core_neftune.detach(str(tmp_path))


@pytest.mark.parametrize(("alpha", "role"), [(None, "policy"), (5.0, "reference"), (5.0, "reward")])
def test_no_hook_when_off_or_for_frozen_roles(tiny_model, tmp_path, alpha, role):
    import torch

    ft_core_neftune.ft_model_ready(model=tiny_model, run=_run(tmp_path, alpha), role=role)
    assert ft_core_neftune.attached(str(tmp_path)) is None
    tiny_model.train()
    input_ids = _ids(tiny_model, 2, 16)
    assert torch.equal(_noise(tiny_model, input_ids), torch.zeros(2, 16, tiny_model.config.hidden_size))


def test_after_train_removes_the_hook_and_records_alpha(tiny_model, tmp_path):
    import torch

    run = _run(tmp_path, 10.0)
    ft_core_neftune.ft_model_ready(model=tiny_model, run=run, role="policy")
    # A second call replaces the first hook instead of stacking another one.
    ft_core_neftune.ft_model_ready(model=tiny_model, run=run, role="policy")
    assert len(tiny_model.get_input_embeddings()._forward_hooks) == 1
    metrics: dict = {"train_loss": 1.0}
    ft_core_neftune.ft_after_train(trainer=None, run=run, metrics=metrics)
    assert metrics == {"train_loss": 1.0, "neftune_alpha": 10.0}
    assert not tiny_model.get_input_embeddings()._forward_hooks
    tiny_model.train()
    input_ids = _ids(tiny_model, 2, 16)
    assert torch.equal(_noise(tiny_model, input_ids), torch.zeros(2, 16, tiny_model.config.hidden_size))
    off: dict = {}
    ft_core_neftune.ft_after_train(trainer=None, run=_run(tmp_path / "other", None), metrics=off)
    assert off == {}


@pytest.mark.parametrize("kind", ["failed", "cancelled"])
def test_a_failed_or_cancelled_run_removes_the_hook(tiny_model, tmp_path, kind):
    ft_core_neftune.ft_model_ready(model=tiny_model, run=_run(tmp_path, 5.0), role="policy")
    ft_core_neftune.ft_run_event(event=RunEvent(kind="step", run_dir=str(tmp_path)))
    assert ft_core_neftune.attached(str(tmp_path)) == 5.0
    ft_core_neftune.ft_run_event(event=RunEvent(kind=kind, run_dir=str(tmp_path)))
    assert ft_core_neftune.attached(str(tmp_path)) is None
    assert not tiny_model.get_input_embeddings()._forward_hooks


# ----------------------------------------------------------------------------------- through the ft-core CLI
def _config(tmp_path: Path, model_dir: str, neftune: dict | None, **training) -> Path:
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "max_samples": 8, "preprocessing_workers": 1},
        "stage": "sft",
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "training": {
            "output_dir": str(tmp_path / "out"),
            "use_cpu": True,
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            "save_steps": 100,
            "plot_loss": False,
            **training,
        },
    }
    if neftune is not None:
        config["neftune"] = neftune
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"alpah": 5}, "neftune.alpah: unknown key. Did you mean 'alpha'?"),
        ({"alpha": 0}, "alpha must be a number > 0"),
        ({"alpha": -3}, "alpha must be a number > 0"),
        ({"alpha": "loud"}, "neftune.alpha: expected"),
    ],
)
def test_config_section_is_validated(tmp_path, tiny_model_dir, capsys, section, expected):
    from ft_core.cli import main

    assert main(["validate", str(_config(tmp_path, tiny_model_dir, section))]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "neftune" in err


def test_valid_section_passes_validation(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    assert main(["validate", str(_config(tmp_path, tiny_model_dir, {"alpha": 5}))]) == 0
    assert "OK" in capsys.readouterr().out


def test_two_step_run_adds_noise_while_training_and_records_alpha(tmp_path, tiny_model_dir, monkeypatch):
    from ft_core.cli import main

    calls = {"training": 0, "eval": 0}
    original = _NoiseHook.__call__

    def counting(self, module, args, output):
        calls["training" if module.training else "eval"] += 1
        return original(self, module, args, output)

    monkeypatch.setattr(_NoiseHook, "__call__", counting)
    config = _config(tmp_path, tiny_model_dir, {"alpha": 5})
    assert main(["run", str(config)]) == 0
    assert calls["training"] >= 2  # one forward pass per step at least
    results = json.loads((tmp_path / "out" / "train_results.json").read_text())
    assert results["neftune_alpha"] == 5.0
    assert not ft_core_neftune.noise._ATTACHED  # removed at the end of training
