"""``ft-core template show`` / ``list`` as a user runs them: renderings, trained spans, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ft_core.testing.tiny import save_tiny_model_dir

FT_CORE = str(Path(sys.executable).parent / "ft-core")


def ft_core(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FT_CORE, *args], capture_output=True, text=True, timeout=300)


def test_show_json_gives_text_and_exactly_the_assistant_spans(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima."},
        {"role": "user", "content": "Ça va ? 你好"},
        {"role": "assistant", "content": "Oui, 很好."},
    ]
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    result = ft_core("template", "show", "chatml", "--messages", str(path), "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["text"] == "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    assert [span["text"] for span in shown["trained"]] == ["Lima.<|im_end|>\n", "Oui, 很好.<|im_end|>\n"]
    for span in shown["trained"]:
        assert shown["text"][span["start"] : span["end"]] == span["text"]


def test_show_appends_the_generation_prompt(tmp_path: Path) -> None:
    path = tmp_path / "messages.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}]}))
    result = ft_core("template", "show", "chatml", "--messages", str(path), "--generation-prompt", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown == {"text": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "trained": []}


def test_show_uses_a_tokenizers_special_tokens(tmp_path: Path) -> None:
    folder = save_tiny_model_dir(str(tmp_path / "model"))  # BOS <s>
    result = ft_core("template", "show", "llama2", "--tokenizer", folder, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["text"].startswith("<s>[INST] <<SYS>>")
    assert all(
        span["text"].endswith("</s>") or span["text"].endswith("<|im_end|>") for span in shown["trained"]
    )


def test_show_without_messages_renders_a_built_in_example_and_marks_spans() -> None:
    result = ft_core("template", "show", "chatml")
    assert result.returncode == 0, result.stderr
    assert "[[The capital of France is Paris.<|im_end|>\n]]" in result.stdout
    assert "2 trained span(s)" in result.stderr


def test_show_reports_bad_messages_with_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]))
    result = ft_core("template", "show", "chatml", "--messages", str(path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        f"{path}: message 1: unknown role 'bot'; expected one of system, user, assistant, tool"
        in result.stderr
    )
    unknown = ft_core("template", "show", "chatm")
    assert unknown.returncode != 0 and "unknown chat template 'chatm'" in unknown.stderr
    assert "Did you mean 'chatml'" in unknown.stderr


def test_list_names_every_registered_template() -> None:
    result = ft_core("template", "list", "--json")
    assert result.returncode == 0, result.stderr
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"chatml", "alpaca", "llama3", "zephyr"} <= names
