"""Chatting with a trained vision-language run: images through the typed inference API, the hf engine and
``ft-core chat --image``, on a tiny Qwen2-VL trained a few LoRA steps on the shapes demo set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_vlm
from test_vlm_train import train

import ft_core_qwen_vl
from ft_core.api.errors import FtCoreError
from ft_core.api.inference import ChatRequest, SamplingOptions
from ft_core.engine.inference.hf import HfEngine, HfEngineOptions
from ft_core.engine.inference.target import resolve_chat_target
from ft_core.engine.vision.shapes import draw

QUESTION = [{"role": "user", "content": "<image>What is in the picture?"}]
GREEDY = SamplingOptions(max_new_tokens=6)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("vlm-chat")
    model_dir = tiny_vlm.qwen2_vl(tmp / "model", ft_core_qwen_vl.QWEN2_VL)
    run, manifest = train(tmp, model_dir, "qwen2_vl", ft_core_qwen_vl)
    assert manifest["status"] == "completed"
    return run


@pytest.fixture(scope="module")
def plugins() -> Any:
    from ft_core.bootstrap import load_plugins

    return load_plugins()


@pytest.fixture(scope="module")
def model(run_dir: Path, plugins: Any) -> Any:
    target = resolve_chat_target(str(run_dir), plugins)
    return HfEngine().load(target, HfEngineOptions(device="cpu"))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    red, blue = folder / "red.png", folder / "blue.png"
    draw("circle", "red", (8, 8, 50, 50)).save(red)
    draw("square", "blue", (8, 8, 50, 50)).save(blue)
    return {"red": red, "blue": blue}


def _last_logits(model: Any, request: ChatRequest) -> Any:
    import torch

    ids, opened = model._prompt(request)
    input_ids = torch.tensor([ids])
    with torch.inference_mode():
        out = model.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            **model._image_inputs(opened, input_ids),
        )
    return out.logits[0, -1]


def test_a_vision_run_is_a_vision_target(run_dir: Path, plugins: Any, model: Any) -> None:
    target = resolve_chat_target(str(run_dir), plugins)
    assert target.vision is not None and target.vision.model_type == "qwen2_vl"
    assert target.vision.template_image_token == "<|vision_start|><|image_pad|><|vision_end|>"
    assert model.accepts_images


def test_the_image_is_used_another_image_changes_the_logits(model: Any, images: dict[str, Path]) -> None:
    red = ChatRequest(QUESTION, sampling=GREEDY, images=[images["red"]])
    blue = ChatRequest(QUESTION, sampling=GREEDY, images=[images["blue"]])
    difference = (_last_logits(model, red) - _last_logits(model, blue)).abs().max().item()
    assert difference > 1e-4
    answer = model.complete(red)
    assert (
        answer.usage.prompt_tokens > 16 + 10
    )  # the image's 16 tokens (32 px, 4 px patches merged 2x2) + text
    assert answer.usage.completion_tokens == 6 and answer.text


def test_paths_bytes_and_pil_images_give_the_same_reply(model: Any, images: dict[str, Path]) -> None:
    from PIL import Image

    path = images["red"]
    with Image.open(path) as opened:
        pil = opened.copy()
    replies = {
        model.complete(ChatRequest(QUESTION, sampling=GREEDY, images=[image])).text
        for image in (path, str(path), path.read_bytes(), pil)
    }
    assert len(replies) == 1


def test_image_requests_batch_with_text_requests(model: Any, images: dict[str, Path]) -> None:
    requests = [
        ChatRequest(QUESTION, sampling=GREEDY, images=[images["red"]]),
        ChatRequest(QUESTION, sampling=SamplingOptions(max_new_tokens=4), images=[images["blue"]]),
        ChatRequest([{"role": "user", "content": "hi"}], sampling=GREEDY),
    ]
    alone = [model.complete(r) for r in requests]
    assert model.generate(requests[:1] + requests[2:]) == [alone[0], alone[2]]
    streamed: dict[int, str] = {}
    for index, delta in model.stream_batch(requests):
        streamed[index] = streamed.get(index, "") + delta.text
    assert [streamed[i] for i in range(3)] == [a.text for a in alone]


def test_images_must_match_the_placeholders(model: Any, images: dict[str, Path]) -> None:
    with pytest.raises(FtCoreError, match=r"1 image\(s\) but its messages hold 0"):
        model.complete(
            ChatRequest([{"role": "user", "content": "hi"}], sampling=GREEDY, images=[images["red"]])
        )
    with pytest.raises(FtCoreError, match="cannot read image"):
        model.complete(ChatRequest(QUESTION, sampling=GREEDY, images=[b"not an image"]))


def test_chat_cli_image_flag(run_dir: Path, images: dict[str, Path], capsys: Any) -> None:
    from ft_core.cli import main

    args = ["chat", str(run_dir), "--max-new-tokens", "6", "-m", "What is in the picture?"]
    assert main([*args[:-2], "--image", str(images["red"]), *args[-2:], "-m", "And now?"]) == 0
    out = capsys.readouterr().out
    assert "User: What is in the picture?\nAssistant: " in out and "User: And now?" in out
    assert main([*args, "--image", str(images["red"]) + ".missing"]) == 2
    assert "--image: no such file" in capsys.readouterr().err


def test_chat_cli_interactive_image(
    run_dir: Path, images: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ft_core.cli import main

    lines = iter([f"/image {images['blue']}", "What is in the picture?", "/image nope.png", "hi", "exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", str(run_dir), "--max-new-tokens", "4"]) == 0
    err = capsys.readouterr().err
    assert "attached to the next message" in err and "/image: no such file: nope.png" in err
