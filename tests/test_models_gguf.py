"""GGUF conversion: a tiny llama GGUF written in-process, the cache's atomicity, and the real SmolLM2 (e2e)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

from ft_core.api.errors import FtCoreError
from ft_core.engine.models import gguf as gguf_module
from ft_core.engine.models.gguf import convert_gguf
from ft_core.engine.storage import atomic_folder, file_sha256
from ft_core.testing.tiny import tiny_model, tiny_tokenizer


def _permute(weight, heads: int):
    """llama.cpp's rotary permutation of q/k weights (transformers undoes it when loading)."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def write_tiny_llama_gguf(path: Path, tokenizer, model) -> None:
    """Write ``model`` + ``tokenizer`` (byte-level BPE) as an fp32 llama GGUF file."""
    import gguf

    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_vocab_size(cfg.vocab_size)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    added = {token["id"]: token["content"] for token in state["added_tokens"]}
    tokens = [added.get(i, t) for t, i in sorted(state["model"]["vocab"].items(), key=lambda kv: kv[1])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if i in added else gguf.TokenType.NORMAL for i in range(len(tokens))]
    )
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_chat_template(tokenizer.chat_template)
    weights = {name: value.detach().numpy() for name, value in model.state_dict().items()}
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        layer = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", weights[layer + "input_layernorm.weight"])
        writer.add_tensor(
            f"blk.{i}.attn_q.weight", _permute(weights[layer + "self_attn.q_proj.weight"], heads)
        )
        writer.add_tensor(
            f"blk.{i}.attn_k.weight", _permute(weights[layer + "self_attn.k_proj.weight"], kv_heads)
        )
        writer.add_tensor(f"blk.{i}.attn_v.weight", weights[layer + "self_attn.v_proj.weight"])
        writer.add_tensor(f"blk.{i}.attn_output.weight", weights[layer + "self_attn.o_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", weights[layer + "post_attention_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights[layer + "mlp.gate_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights[layer + "mlp.up_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights[layer + "mlp.down_proj.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    writer.add_tensor("output.weight", weights["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    pytest.importorskip("gguf")
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    write_tiny_llama_gguf(path, tokenizer, model)
    return path, tokenizer, model


def _fake_converter(calls: list[Path], delay: float = 0.0):
    def convert(source: Path, folder: Path) -> None:
        calls.append(folder)
        time.sleep(delay)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"")

    return convert


def test_tiny_gguf_converts_to_a_plain_model_with_identical_logits(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, tokenizer, model = tiny_gguf
    folder = Path(convert_gguf(path, tmp_path / "models"))
    assert folder == tmp_path / "models" / f"tiny-llama-{file_sha256(path)[:16]}"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    converted = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(converted, "hf_quantizer", None) is None and not getattr(converted, "is_quantized", False)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    assert reloaded_tokenizer.chat_template == tokenizer.chat_template
    text = "What is the capital of France? Paris."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(reloaded_tokenizer(text, return_tensors="pt").input_ids, ids)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, converted(ids).logits, atol=1e-5)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_second_call_reuses_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF v1")
    calls: list[Path] = []
    monkeypatch.setattr(gguf_module, "_convert_into", _fake_converter(calls))
    first = convert_gguf(source, tmp_path / "cache")
    assert convert_gguf(source, tmp_path / "cache") == first
    assert len(calls) == 1
    source.write_bytes(b"GGUF v2")  # new content, new folder
    assert convert_gguf(source, tmp_path / "cache") != first


def test_default_cache_follows_ft_core_cache(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    monkeypatch.setenv("FT_CORE_CACHE", str(tmp_path / "root"))
    monkeypatch.setattr(gguf_module, "_convert_into", _fake_converter([]))
    assert Path(convert_gguf(source)).parent == tmp_path / "root" / "models"


def test_concurrent_conversions_convert_once(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    calls: list[Path] = []
    monkeypatch.setattr(gguf_module, "_convert_into", _fake_converter(calls, delay=0.3))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(convert_gguf(source, tmp_path))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 3


def test_a_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")

    def broken(source: Path, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(gguf_module, "_convert_into", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        convert_gguf(source, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_an_incomplete_cache_folder_is_rebuilt(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    target = gguf_module.converted_folder(source, tmp_path)
    target.mkdir()
    (target / "config.json").write_text("{}")  # weights missing
    calls: list[Path] = []
    monkeypatch.setattr(gguf_module, "_convert_into", _fake_converter(calls))
    assert convert_gguf(source, tmp_path) == str(target)
    assert calls and (target / "model.safetensors").is_file()


def test_atomic_folder_keeps_the_winner_of_a_rename_race(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as temporary:
        (temporary / "mine").write_text("loser")
        target.mkdir()  # another process publishes first
        (target / "theirs").write_text("winner")
    assert sorted(p.name for p in target.iterdir()) == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_missing_gguf_file(tmp_path):
    with pytest.raises(FtCoreError, match="does not exist"):
        convert_gguf(tmp_path / "absent.gguf", tmp_path)


@pytest.mark.e2e
def test_embedded_smollm2_converts_and_knows_paris():
    from transformers import AutoModelForCausalLM

    from ft_core.api.config import ModelSection
    from ft_core.engine.models.embedded import resolve_model_path
    from ft_core.engine.models.loader import load_tokenizer

    pytest.importorskip("gguf")
    try:
        folder = resolve_model_path("SmolLM2-135M-Instruct")  # converts once into ~/.cache/ft-core/models
    except FtCoreError as exc:
        pytest.skip(str(exc))
    started = time.perf_counter()
    assert resolve_model_path("smollm2-135m-instruct") == folder
    assert time.perf_counter() - started < 5
    tokenizer = load_tokenizer(ModelSection(name_or_path=folder))
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
