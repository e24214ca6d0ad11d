"""Property tests of the API server on generated requests: random JSON bodies (and valid ones mutated) for
``POST /v1/chat/completions``, raw bytes, and the other routes. The contract: a 2xx, or a 4xx (503 when busy) with
an OpenAI-shaped error message; never a 500. ``FT_CORE_FUZZ=long`` runs thousands (CONTRIBUTING.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ft_core.testing.fuzz import fuzz_settings, hostile_text, hostile_values, nested

FIELDS = (
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "response_format",
    "user",
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "bot", ""])
CONTENT = st.one_of(
    hostile_text(60),
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": hostile_text(30)}),
            st.fixed_dictionaries(
                {"type": st.just("image_url"), "image_url": st.one_of(hostile_text(), nested(2))}
            ),
        ),
        max_size=3,
    ),
)
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES, "content": CONTENT},
    optional={
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"function": st.fixed_dictionaries({"name": hostile_text(10), "arguments": hostile_text(30)})}
            ),
            max_size=2,
        ),
        "name": hostile_text(10),
    },
)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    """A request body: mostly well-formed with a few fields set to anything, sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(hostile_values())
    body: dict[str, Any] = {"model": "tiny", "messages": draw(st.lists(MESSAGE, min_size=1, max_size=3))}
    body["max_tokens"] = draw(st.integers(1, 3))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.one_of(st.sampled_from(FIELDS), hostile_text(10)))
        body[key] = draw(
            st.one_of(hostile_values(), st.just([TOOL]), st.just({"include_usage": True}), st.booleans())
        )
    return body


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, serve_plugins: Any) -> Any:
    """The app on the tiny random-init model (built-in ``hf`` engine), replies of at most 3 tokens."""
    from fastapi.testclient import TestClient

    from ft_core.api import ChatTarget
    from ft_core.testing.tiny import save_tiny_model_dir
    from ft_core_serve.app import ServedModel, ServerOptions, create_app

    path = save_tiny_model_dir(str(tmp_path_factory.mktemp("fuzz-serve")))

    def load_model(dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    engine = serve_plugins.get("inference_engine", "hf")
    model = engine.load(ChatTarget("tiny", path, load_model), engine.options_schema())
    app = create_app(ServedModel(name="tiny", model=model), ServerOptions(max_tokens=3, max_batch_size=1))
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


def check(response: Any) -> None:
    """2xx, or a 4xx / 503 whose body is an OpenAI error with a message; never a 500 or a traceback."""
    assert "Traceback" not in response.text
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"], response.text
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert '"server_error"' not in response.text, response.text


@fuzz_settings(150)
@given(body=bodies())
def test_generated_completion_requests_get_a_reply_or_a_4xx(client: Any, body: Any) -> None:
    try:
        payload = json.dumps(body, allow_nan=True).encode()
    except (ValueError, RecursionError):  # not JSON at all: send its repr as the body
        payload = repr(body).encode()
    check(client.post("/v1/chat/completions", content=payload, headers={"content-type": "application/json"}))


@fuzz_settings(40)
@given(
    payload=st.binary(max_size=200), path=st.sampled_from(["/v1/chat/completions", "/v1/models/x", "/nope"])
)
def test_raw_bytes_get_a_4xx(client: Any, payload: bytes, path: str) -> None:
    check(client.post(path, content=payload))


@fuzz_settings(30)
@given(model=hostile_text(40))
def test_model_ids_of_any_text_are_looked_up(client: Any, model: str) -> None:
    check(client.get(f"/v1/models/{quote(model, safe='/')}"))
