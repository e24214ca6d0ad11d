import json
from pathlib import Path

import pytest
import torch

import ft_core_longlora
from ft_core.api import FtCoreError, OptionsError
from ft_core.testing import run_config
from ft_core.testing.import_light import check_import_light
from ft_core.testing.tiny import tiny_model
from ft_core_longlora.attention import group_size, shifted_sparse_attention
from ft_core_longlora.patch import ShiftAttnOptions, ShiftAttnPatch


def _batch(tokenizer, length=13):
    torch.manual_seed(1)
    ids = torch.randint(3, len(tokenizer), (2, length))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in the second row
    return ids, mask


def _logits(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits


def test_registers_the_patch(make_plugins):
    plugins = make_plugins(ft_core_longlora)
    assert isinstance(plugins.get("model_patch", "shift_attn"), ShiftAttnPatch)


def test_import_light():
    check_import_light("ft_core_longlora")


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral"])
def test_one_group_covering_the_sequence_is_full_attention(tiny_tokenizer, model_type):
    model = tiny_model(tiny_tokenizer, model_type=model_type, attn_implementation="sdpa").train()
    ids, mask = _batch(tiny_tokenizer)
    reference = _logits(model, ids, mask)
    ShiftAttnPatch().patch_model(model, ShiftAttnOptions(group_size_ratio=1.0))
    patched = _logits(model, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(patched[real], reference[real], atol=1e-5, rtol=1e-5)


def test_shifted_groups_differ_from_full_attention_in_training_only(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa").train()
    ids, mask = _batch(tiny_tokenizer, length=16)
    reference = _logits(model, ids, mask)
    ShiftAttnPatch().patch_model(model, ShiftAttnOptions())
    patched = _logits(model, ids, mask)
    real = mask.bool()
    assert torch.isfinite(patched).all()
    assert (patched[real] - reference[real]).abs().max() > 1e-3
    model.eval()
    torch.testing.assert_close(_logits(model, ids, mask)[real], reference[real], atol=1e-5, rtol=1e-5)


def test_shifted_attention_trains(tiny_tokenizer):
    model = ShiftAttnPatch().patch_model(tiny_model(tiny_tokenizer).train(), ShiftAttnOptions())
    ids, mask = _batch(tiny_tokenizer, length=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_groups_and_shift_follow_longlora():
    """Unshifted heads attend within groups of L/4 tokens; shifted heads within groups offset by half a group."""
    batch, heads, length, dim = 1, 2, 8, 4
    value = torch.arange(length, dtype=torch.float32).view(1, 1, length, 1).expand(batch, heads, length, dim)
    query = torch.zeros(batch, heads, length, dim)  # uniform weights over the allowed keys
    key = torch.zeros(batch, heads, length, dim)
    out = shifted_sparse_attention(query, key, value, None, ratio=0.25)  # (B, L, H, D); groups of 2
    assert group_size(length, 0.25) == 2
    plain, shifted = out[0, :, 0, 0], out[0, :, 1, 0]
    # head 0: groups {0,1} {2,3} ...: token 1 averages 0 and 1, token 2 only itself
    assert plain.tolist() == [0.0, 0.5, 2.0, 2.5, 4.0, 4.5, 6.0, 6.5]
    # head 1: groups {1,2} {3,4} {5,6} {7,0}: token 2 averages 1 and 2; in the wrapped group token 7 sees the
    # earlier token 0, and token 0 does not see the later token 7
    assert shifted.tolist() == [0.0, 1.0, 1.5, 3.0, 3.5, 5.0, 5.5, 3.5]


def test_bad_ratio_is_an_options_error():
    with pytest.raises(OptionsError, match="group_size_ratio must be in"):
        ShiftAttnOptions(group_size_ratio=0)


def test_unsupported_model_type_is_an_error_at_patch_time(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, model_type="starcoder2")
    with pytest.raises(FtCoreError, match="cannot wrap the attention of model_type 'starcoder2'"):
        ShiftAttnPatch().patch_model(model, ShiftAttnOptions())


def _write_config(tmp_path: Path, model_dir: str, **sections) -> Path:
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8, "modules_to_save": ["embed_tokens", "norm"]},
        "patches": ["shift_attn"],
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "save_steps": 100,
            "use_cpu": True,
        },
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    return path


def test_validate_refuses_other_model_types_and_attention_kernels(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    config["model_type"] = "starcoder2"
    (Path(tiny_model_dir) / "config.json").write_text(json.dumps(config))
    path = _write_config(
        tmp_path,
        tiny_model_dir,
        model={"name_or_path": tiny_model_dir, "attn_implementation": "flex_attention"},
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot wrap the attention of model_type 'starcoder2'" in err
    assert "model.attn_implementation: flex_attention cannot be combined with S²-Attn" in err


def test_validate_refuses_packing(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    path = _write_config(tmp_path, tiny_model_dir, data={"dataset": ["identity"], "packing": True})
    assert main(["validate", str(path)]) == 2
    assert "data.packing: true cannot be combined with S²-Attn" in capsys.readouterr().err


def test_a_lora_run_with_shift_attn_completes(tmp_path, tiny_model_dir):
    run_dir = run_config(_write_config(tmp_path, tiny_model_dir), ft_core_longlora)
    results = json.loads((run_dir / "train_results.json").read_text())
    assert results["train_loss"] > 0
    saved = (run_dir / "model" / "adapter_model.safetensors").read_bytes()
    assert b"embed_tokens" in saved and b"norm" in saved  # LongLoRA's trainable embeddings and norms
