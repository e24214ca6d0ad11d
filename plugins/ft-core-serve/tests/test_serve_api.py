"""The OpenAI-compatible API of ``ft-core serve`` through FastAPI's TestClient: response and stream shapes on a
tiny random-init model, batching, the run's template settings, tool calls, the API key, limits and every error in
OpenAI's shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import ft_core_serve
from ft_core.api import ChatTarget
from ft_core.api.toolcalls import hermes
from ft_core.testing.import_light import check_import_light

HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
REFUSING_TEMPLATE = (
    "{% for m in messages %}{% if m['content'] == 'refuse me' %}{{ raise_exception('no such turn') }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def ask(content: Any = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **fields}


def events(response: Any) -> list[Any]:
    """The server-sent events of a streamed response: decoded chunks, then ``"[DONE]"``."""
    data = [line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory, serve_plugins: Any) -> Any:
    """The tiny random-init model on the built-in ``hf`` engine (with a template that refuses one message)."""
    from ft_core.testing.tiny import save_tiny_model_dir

    path = save_tiny_model_dir(str(tmp_path_factory.mktemp("serve-tiny")), chat_template=REFUSING_TEMPLATE)

    def load_model(dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    engine = serve_plugins.get("inference_engine", "hf")
    return engine.load(ChatTarget("tiny", path, load_model), engine.options_schema())


# --------------------------------------------------------------------------------------------- registration
def test_registers_the_serve_command(make_plugins):
    plugins = make_plugins(ft_core_serve)
    assert plugins.get("cli_command", "serve").help.startswith("serve a trained run folder")


def test_registration_is_import_light():
    check_import_light(
        "ft_core_serve", forbidden=("torch", "transformers", "fastapi", "uvicorn", "starlette")
    )


# --------------------------------------------------------------------------------------------- models
def test_models_lists_the_served_model(serve_client, scripted):
    with serve_client(scripted()) as http:
        listing = http.get("/v1/models").json()
        assert [m["id"] for m in listing["data"]] == ["tiny"] and listing["object"] == "list"
        assert http.get("/v1/models/tiny").json()["owned_by"] == "ft-core"
        missing = http.get("/v1/models/other")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        assert http.get("/health").json() == {"status": "ok"}


# --------------------------------------------------------------------------------------------- completions
def test_a_completion_on_the_tiny_model_has_openai_shape_and_counts_tokens(serve_client, tiny_chat_model):
    with serve_client(tiny_chat_model) as http:
        body = http.post("/v1/chat/completions", json=ask(max_tokens=5, temperature=0)).json()
    assert (
        body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "tiny"
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    prompt = len(tiny_chat_model.prompt_ids(tiny_chat_model_request("hi")))
    assert body["usage"] == {"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5}


def tiny_chat_model_request(content: str) -> Any:
    from ft_core.api import ChatRequest

    return ChatRequest([{"role": "user", "content": content}])


def test_a_stream_sends_the_same_text_as_a_completion_then_usage_and_done(serve_client, tiny_chat_model):
    with serve_client(tiny_chat_model) as http:
        plain = http.post("/v1/chat/completions", json=ask(max_tokens=12, temperature=0)).json()
        response = http.post(
            "/v1/chat/completions",
            json=ask(max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}),
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = events(response)
    assert chunks[-1] == "[DONE]"
    *deltas, closing, usage = chunks[:-1]
    assert deltas[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == deltas[0]["id"] for c in deltas)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in deltas)
    assert text == plain["choices"][0]["message"]["content"]
    assert closing["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert usage["choices"] == [] and usage["usage"] == plain["usage"]


def test_concurrent_requests_are_generated_in_one_batch_with_one_by_one_replies(tiny_chat_model):
    import httpx

    from ft_core_serve.app import ServedModel, ServerOptions, create_app

    async def replies(max_batch_size: int) -> tuple[list[str], list[int]]:
        app = create_app(
            ServedModel("tiny", tiny_chat_model),
            ServerOptions(max_batch_size=max_batch_size, batch_window_s=0.2),
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
                bodies = [ask("hi " * n, max_tokens=4 + n, temperature=0) for n in range(6)]
                answers = await asyncio.gather(*(http.post("/v1/chat/completions", json=b) for b in bodies))
        return [a.json()["choices"][0]["message"]["content"] for a in answers], app.state.batcher.batch_sizes

    batched, sizes = asyncio.run(replies(8))
    one_by_one, single_sizes = asyncio.run(replies(1))
    assert sizes == [6] and single_sizes == [1] * 6
    assert batched == one_by_one  # greedy: left padding changes nothing


def test_the_run_template_system_prompt_and_stop_words_reach_the_engine(serve_client, scripted):
    model = scripted()
    fields = {"system": "You are Nova.", "stop_words": ("<|end|>",)}
    with serve_client(model, served_fields=fields) as http:
        http.post("/v1/chat/completions", json=ask(stop="END"))
        http.post(
            "/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "?"}],
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"x": 1}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                ],
                "max_tokens": 7,
                "temperature": 0.5,
                "top_p": 0.9,
                "seed": 3,
            },
        )
    first, second = model.requests
    assert first.messages == [
        {"role": "system", "content": "You are Nova."},
        {"role": "user", "content": "hi"},
    ]
    assert first.sampling.stop == ("END", "<|end|>") and first.sampling.max_new_tokens == 512
    assert first.sampling.temperature == 1.0  # OpenAI's default
    assert second.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather ?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}, "id": "c1"}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
    ]
    sampling = second.sampling
    assert (sampling.max_new_tokens, sampling.temperature, sampling.top_p, sampling.seed) == (7, 0.5, 0.9, 3)


# --------------------------------------------------------------------------------------------- tool calls
def test_a_reply_in_the_template_tool_format_is_a_tool_call(serve_client, scripted):
    model = scripted(lambda request: HERMES_CALL)
    with serve_client(model, served_fields={"parse_tool_calls": hermes}) as http:
        body = http.post("/v1/chat/completions", json=ask("Weather in Paris?", tools=[WEATHER_TOOL])).json()
        streamed = events(
            http.post("/v1/chat/completions", json=ask("Weather?", tools=[WEATHER_TOOL], stream=True))
        )
        refused = http.post(
            "/v1/chat/completions", json=ask("x", tools=[WEATHER_TOOL], tool_choice="none")
        ).json()
    assert model.requests[0].tools == [WEATHER_TOOL]
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    (streamed_call,) = streamed[1]["choices"][0]["delta"]["tool_calls"]
    assert streamed_call["index"] == 0 and streamed_call["function"] == call["function"]
    assert streamed[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert model.requests[2].tools is None and refused["choices"][0]["message"]["content"] == HERMES_CALL


def test_without_tools_or_a_tool_format_the_reply_stays_text(serve_client, scripted):
    with serve_client(scripted(lambda request: HERMES_CALL)) as http:
        body = http.post("/v1/chat/completions", json=ask(tools=[WEATHER_TOOL])).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": HERMES_CALL}
    assert body["choices"][0]["finish_reason"] == "stop"


# --------------------------------------------------------------------------------------------- api key
def test_an_api_key_is_required_when_set(serve_client, scripted):
    with serve_client(scripted(), api_key="s3cret") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            denied = http.post("/v1/chat/completions", json=ask(), headers=headers)
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
            assert set(denied.json()["error"]) == {"message", "type", "param", "code"}
        assert http.get("/v1/models").status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert http.post("/v1/chat/completions", json=ask(), headers=good).status_code == 200
        assert http.get("/v1/models", headers=good).status_code == 200
        assert http.get("/health").status_code == 200


def test_the_api_key_is_compared_in_constant_time(serve_client, scripted, monkeypatch):
    from ft_core_serve import app

    compared = []
    real = app.hmac.compare_digest
    monkeypatch.setattr(app.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    with serve_client(scripted(), api_key="s3cret-é") as http:
        headers = {"Authorization": "Bearer s3cret-x"}
        assert http.post("/v1/chat/completions", json=ask(), headers=headers).status_code == 401
    assert compared == [(b"s3cret-x", "s3cret-é".encode())], "hmac.compare_digest decides, never =="


# --------------------------------------------------------------------------------------------- errors
BAD_REQUESTS = [
    # (body, status, code, param, words in the message)
    ({"model": "tiny"}, 400, None, "messages", "Field required"),
    (ask(temperature="hot"), 400, None, "temperature", "valid number"),
    (ask(max_tokens="5"), 400, None, "max_tokens", "valid integer"),
    (ask(stream="yes"), 400, None, "stream", "valid boolean"),
    (ask(temperature=3), 400, None, "temperature", "less than or equal to 2"),
    ({"model": "tiny", "messages": []}, 400, None, "messages", "at least 1"),
    (
        {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]},
        400,
        None,
        "messages[0].role",
        "'user'",
    ),
    ({"model": "tiny", "messages": [{"role": "user"}]}, 400, None, "messages[0].content", "required"),
    (ask(content=5), 400, None, "messages[0].content", "valid string"),
    (
        {"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
        400,
        None,
        "messages[0].content[0].text",
        "valid string",
    ),
    (ask(frobnicate=1), 400, None, "frobnicate", "Unrecognized request argument supplied: frobnicate"),
    (ask(n=2), 400, None, "n", "only 1 choice"),
    (ask(tool_choice="required"), 400, None, "tool_choice", "only 'auto'"),
    (ask(max_tokens=513), 400, None, "max_tokens", "more than this server allows (512"),
    (ask(max_completion_tokens=10**6), 400, None, "max_completion_tokens", "--max-tokens"),
    (ask(stop=["a", "b", "c", "d", "e"]), 400, None, "stop", "at most 4"),
    (ask(stop=""), 400, None, "stop", "must not be empty"),
    (
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        },
        400,
        None,
        "messages[0].content[0]",
        "image input is not supported",
    ),
    (
        {
            "model": "tiny",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{"}}],
                }
            ],
        },
        400,
        None,
        "messages[0].tool_calls[0].function.arguments",
        "not valid JSON",
    ),
    (
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        404,
        "model_not_found",
        "model",
        "'tiny'",
    ),
    ([1, 2], 400, None, None, "JSON object"),
]


@pytest.mark.parametrize(("body", "status", "code", "param", "words"), BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_in_openai_error_shape(
    serve_client, scripted, body, status, code, param, words
):
    with serve_client(scripted()) as http:
        response = http.post("/v1/chat/completions", json=body)
    error = response.json()["error"]
    assert response.status_code == status, error
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == (code, param) and words in error["message"], error


def test_bad_json_a_large_body_and_an_unknown_route_are_4xx_in_openai_shape(serve_client, scripted):
    with serve_client(scripted(), max_body_bytes=200) as http:
        bad = http.post(
            "/v1/chat/completions",
            content=b'{"model": "tiny", "messages": [',
            headers={"content-type": "application/json"},
        )
        large = http.post("/v1/chat/completions", json=ask("x" * 300))
        route = http.get("/v1/engines")
        method = http.get("/v1/chat/completions")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert large.status_code == 413 and large.json()["error"]["code"] == "request_too_large"
    assert route.status_code == 404 and "no route GET /v1/engines" in route.json()["error"]["message"]
    assert method.status_code == 405 and set(method.json()["error"]) == {"message", "type", "param", "code"}


def test_a_conversation_the_template_refuses_fails_alone_with_a_400(tiny_chat_model):
    import httpx

    from ft_core_serve.app import ServedModel, ServerOptions, create_app

    async def both() -> list[Any]:
        app = create_app(ServedModel("tiny", tiny_chat_model), ServerOptions(batch_window_s=0.2))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
                bodies = [ask("refuse me", max_tokens=3), ask("hi", max_tokens=3)]
                answers = await asyncio.gather(*(http.post("/v1/chat/completions", json=b) for b in bodies))
                return [*answers, app.state.batcher.batch_sizes]

    refused, fine, sizes = asyncio.run(both())
    assert sizes == [2]  # one batch, which failed and was retried one request at a time
    assert refused.status_code == 400 and "no such turn" in refused.json()["error"]["message"]
    assert fine.status_code == 200 and fine.json()["choices"][0]["finish_reason"] == "length"


def test_an_engine_failure_is_a_500_without_traceback(serve_client, scripted):
    def broken(request: Any) -> str:
        raise RuntimeError("CUDA out of memory (secret detail)")

    with serve_client(scripted(broken)) as http:
        plain = http.post("/v1/chat/completions", json=ask())
        streamed = http.post("/v1/chat/completions", json=ask(stream=True))
    assert plain.status_code == 500 and plain.json()["error"]["type"] == "server_error"
    assert "secret" not in plain.text and "Traceback" not in plain.text
    assert streamed.status_code == 500 and "secret" not in streamed.text
