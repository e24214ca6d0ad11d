"""Images in chat requests: OpenAI ``image_url`` parts as ``data:`` URLs (base64) or files inside the server's
image folder (never ``..``, never outside it, never a remote URL), a text-only model refusing them, and a trained
tiny vision-language run answering a request with a data-URL image."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest

from ft_core.api import ChatRequest


def png(colour: str = "red") -> bytes:
    from ft_core.engine.vision.shapes import draw

    buffer = io.BytesIO()
    draw("circle", colour, (8, 8, 50, 50)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def ask_with(*urls: Any, text: str = "What is in the picture?") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}],
    }


@pytest.fixture
def vision_model(scripted: Any) -> Any:
    class Seeing(scripted):  # type: ignore[misc, valid-type]
        accepts_images = True

    return Seeing(lambda r: f"{len(r.images)} image(s)")


def _error(response: Any, status: int = 400) -> dict[str, Any]:
    error = response.json()["error"]
    assert response.status_code == status, error
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    return error


def test_a_data_url_image_becomes_the_request_image(serve_client: Any, vision_model: Any) -> None:
    image = png()
    with serve_client(vision_model) as http:
        response = http.post("/v1/chat/completions", json=ask_with(data_url(image), data_url(png("blue"))))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "2 image(s)"
    request: ChatRequest = vision_model.requests[-1]
    assert request.messages == [{"role": "user", "content": "<image><image>What is in the picture?"}]
    assert request.images == [image, png("blue")]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("data:image/png;base64,%%%not-base64", "not valid base64"),
        ("data:image/png,rawbytes", "must be base64-encoded"),
        ("https://example.com/cat.png", "not fetched"),
        ("http://127.0.0.1/cat.png", "not fetched"),
        ("/etc/hostname", "reads no local files"),
        ("", "required"),
    ],
)
def test_bad_image_urls_are_400(serve_client: Any, vision_model: Any, url: str, words: str) -> None:
    with serve_client(vision_model) as http:
        error = _error(http.post("/v1/chat/completions", json=ask_with(url)))
    assert words in error["message"] and error["param"].startswith("messages[0].content[0]"), error
    assert not vision_model.requests


def test_image_files_only_inside_the_image_folder(
    serve_client: Any, vision_model: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "red.png").write_bytes(png())
    (tmp_path / "secret.png").write_bytes(png("blue"))
    os.symlink(tmp_path / "secret.png", folder / "link.png")
    with serve_client(vision_model, image_folder=folder) as http:
        for url in ("sub/red.png", f"file://{folder}/sub/red.png", str(folder / "sub" / "red.png")):
            response = http.post("/v1/chat/completions", json=ask_with(url))
            assert response.status_code == 200, (url, response.text)
            assert vision_model.requests[-1].images == [str((folder / "sub" / "red.png").resolve())]
        refused = {
            "../secret.png": "'..' is not allowed",
            "sub/../../secret.png": "'..' is not allowed",
            str(tmp_path / "secret.png"): "outside the server's image folder",
            f"file://{tmp_path}/secret.png": "outside the server's image folder",
            "link.png": "outside the server's image folder",
            "sub/missing.png": "no such image file",
            "sub": "no such image file",
        }
        for url, words in refused.items():
            error = _error(http.post("/v1/chat/completions", json=ask_with(url)))
            assert words in error["message"], (url, error)


def test_image_placeholder_text_is_refused_for_a_vision_model(serve_client: Any, vision_model: Any) -> None:
    with serve_client(vision_model) as http:
        error = _error(http.post("/v1/chat/completions", json=ask_with(text="look: <image>")))
    assert (
        "must not contain '<image>'" in error["message"] and error["param"] == "messages[0].content[0].text"
    )


def test_a_text_only_model_refuses_images_with_a_400(serve_client: Any, scripted: Any) -> None:
    model = scripted()
    with serve_client(model) as http:
        error = _error(http.post("/v1/chat/completions", json=ask_with(data_url(png()))))
        assert "reads text only" in error["message"] and error["param"] == "messages[0].content[0]"
        # '<image>' in text is plain text for a text model
        plain = {"model": "tiny", "messages": [{"role": "user", "content": "<image> is a tag"}]}
        assert http.post("/v1/chat/completions", json=plain).status_code == 200
    assert len(model.requests) == 1


# ------------------------------------------------------------------------------------ a trained vision run
@pytest.fixture(scope="module")
def vision_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2-VL (``ft_core.engine.vision.tiny``) after a few LoRA steps on the shapes demo set."""
    import yaml

    qwen_vl = pytest.importorskip("ft_core_qwen_vl")
    from ft_core.engine.vision import tiny
    from ft_core.testing import run_config

    tmp = tmp_path_factory.mktemp("serve-vlm")
    model_dir = tiny.write(tmp / "model")
    config = {
        "model": {"name_or_path": str(model_dir)},
        "template": {"name": "qwen2_vl"},
        "data": {"dataset": ["vlm_shapes_demo"], "cutoff_len": 128, "max_samples": 4},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8, "targets": "all"},
        "training": {
            "output_dir": str(tmp / "run"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return Path(run_config(path, qwen_vl))


def test_a_vision_run_answers_a_data_url_image(serve_client: Any, vision_run: Path) -> None:
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.inference.target import resolve_chat_target

    plugins = load_plugins()
    engine = plugins.get("inference_engine", "hf")
    model = engine.load(resolve_chat_target(str(vision_run), plugins), engine.options_schema())
    assert model.accepts_images
    with serve_client(model) as http:
        body = {**ask_with(data_url(png())), "max_tokens": 5, "temperature": 0}
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["usage"]["completion_tokens"] == 5 and answer["usage"]["prompt_tokens"] > 16
        # a text-only request to the vision model
        missing = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert http.post("/v1/chat/completions", json=missing).status_code == 200
        streamed = http.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
