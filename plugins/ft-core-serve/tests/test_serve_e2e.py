"""End to end: a live server (uvicorn on a free localhost port) called with the official ``openai`` client. The
embedded SmolLM2-135M-Instruct answers a plain and a streamed question and 50 concurrent requests (in batches);
the tool call comes from a tiny model that learnt one tool call, served with a tool-format template (SmolLM2's
own template has no tool format)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ft_core.api import ChatTarget
from ft_core.api.toolcalls import hermes

pytestmark = pytest.mark.e2e

EMBEDDED = "smollm2-135m-instruct"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
#: A ChatML template with a tool format: the tools in a system turn, calls as Hermes <tool_call> JSON.
TOOL_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\nTools: ' + (tools | tojson) + '<|im_end|>\n' }}{% endif %}"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TOOL_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
WEATHER_QUESTION = [{"role": "user", "content": "What's the weather in Paris?"}]


@contextmanager
def live_server(served: Any, **options: Any) -> Iterator[tuple[str, Any]]:
    """``served`` on a live uvicorn server at a free localhost port: ``(base_url, app)``."""
    import uvicorn

    from ft_core_serve.app import ServerOptions, create_app
    from ft_core_serve.command import bind_socket

    app = create_app(served, ServerOptions(**options))
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def embedded(serve_plugins: Any) -> Iterator[tuple[str, Any]]:
    """The embedded model served live, as ``ft-core serve smollm2-135m-instruct`` serves it."""
    from ft_core.bootstrap import engine_services
    from ft_core_serve.app import ServedModel

    target = engine_services(serve_plugins).chat_target(
        EMBEDDED
    )  # what `ft-core serve` gets as args.services
    engine = serve_plugins.get("inference_engine", "hf")
    served = ServedModel(
        EMBEDDED, engine.load(target, engine.options_schema()), stop_words=tuple(target.stop_words)
    )
    with live_server(served, api_key="e2e-key") as server:
        yield server


def client(base_url: str, asynchronous: bool = False) -> Any:
    import openai

    kind = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return kind(base_url=base_url, api_key="e2e-key", max_retries=0, timeout=600)


def test_a_plain_answer(embedded):
    base_url, _ = embedded
    reply = client(base_url).chat.completions.create(
        model=EMBEDDED, messages=FRANCE, max_tokens=12, temperature=0
    )
    assert "Paris" in reply.choices[0].message.content, reply
    assert reply.choices[0].finish_reason in ("stop", "length") and 0 < reply.usage.completion_tokens <= 12


def test_a_streamed_answer_equals_the_plain_one(embedded):
    base_url, _ = embedded
    openai = client(base_url)
    plain = openai.chat.completions.create(model=EMBEDDED, messages=FRANCE, max_tokens=12, temperature=0)
    stream = openai.chat.completions.create(
        model=EMBEDDED, messages=FRANCE, max_tokens=12, temperature=0, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason


def test_ft_core_serve_on_the_command_line():
    """The console script as a user runs it: it loads the model, says where it serves, answers, stops on Ctrl-C."""
    import openai

    command = [
        str(Path(sys.executable).parent / "ft-core"),
        "serve",
        EMBEDDED,
        "--port",
        "0",
        "--max-tokens",
        "16",
    ]
    server = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "FT_CORE_API_KEY": "cli-key"}
    )
    try:
        assert server.stderr is not None
        lines = []
        while not (lines and "serving" in lines[-1]):
            line = server.stderr.readline()
            assert line, f"ft-core serve ended before serving: {''.join(lines)}"
            lines.append(line)
        base_url = lines[-1].split(" at ", 1)[1].split()[0]
        client = openai.OpenAI(base_url=base_url, api_key="cli-key", max_retries=0)
        assert [m.id for m in client.models.list()] == [EMBEDDED]
        reply = client.chat.completions.create(model=EMBEDDED, messages=FRANCE, temperature=0)
        assert "Paris" in reply.choices[0].message.content and reply.usage.completion_tokens <= 16
        with pytest.raises(openai.BadRequestError, match="more than this server allows"):
            client.chat.completions.create(model=EMBEDDED, messages=FRANCE, max_tokens=17)
    finally:
        server.send_signal(signal.SIGINT)
        returncode = server.wait(60)
    assert returncode in (0, 130)


def test_a_wrong_key_is_refused(embedded):
    import openai

    base_url, _ = embedded
    with pytest.raises(openai.AuthenticationError, match="Incorrect or missing API key") as refused:
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    assert refused.value.code == "invalid_api_key"


def test_50_concurrent_requests_all_succeed_in_batches(embedded):
    base_url, app = embedded
    cities = ["France", "Italy", "Spain", "Germany", "Japan"]

    async def ask_all() -> list[Any]:
        openai = client(base_url, asynchronous=True)
        return await asyncio.gather(
            *(
                openai.chat.completions.create(
                    model=EMBEDDED,
                    messages=[{"role": "user", "content": f"What is the capital of {cities[i % 5]}? ({i})"}],
                    max_tokens=8,
                    temperature=0,
                )
                for i in range(50)
            )
        )

    before = len(app.state.batcher.batch_sizes)
    replies = asyncio.run(ask_all())
    assert len(replies) == 50 and all(r.choices[0].message.content for r in replies)
    assert all(r.usage.completion_tokens <= 8 for r in replies)
    sizes = app.state.batcher.batch_sizes[before:]
    assert sum(sizes) == 50 and max(sizes) > 1, sizes


@pytest.fixture(scope="module")
def tool_caller(tmp_path_factory: pytest.TempPathFactory, serve_plugins: Any) -> Iterator[tuple[str, Any]]:
    """A tiny random-init model trained (overfit, a few seconds) to answer the weather question with a tool call,
    served live with a tool-format template and the Hermes tool-call parser."""
    import torch

    from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_model, tiny_tokenizer
    from ft_core_serve.app import ServedModel

    # As in Qwen's tokenizers, the tool-call markers are plain text, not special tokens (which decoding drops).
    tokenizer = tiny_tokenizer(special_tokens=[t for t in DEFAULT_SPECIAL_TOKENS if "tool_call" not in t])
    tokenizer.chat_template = TOOL_TEMPLATE
    prompt = tokenizer.apply_chat_template(
        WEATHER_QUESTION, tools=[WEATHER_TOOL], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    reply = tokenizer(TOOL_CALL + "<|im_end|>", add_special_tokens=False)["input_ids"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    try:
        torch.manual_seed(0)
        model = tiny_model(tokenizer)
        ids = torch.tensor([prompt + reply])
        labels = ids.clone()
        labels[0, : len(prompt)] = -100
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
        for _ in range(400):
            loss = model(input_ids=ids, labels=labels).loss
            if loss.item() < 0.005:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("tool-caller")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)

    def load_model(dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    engine = serve_plugins.get("inference_engine", "hf")
    loaded = engine.load(ChatTarget("tool caller", str(path), load_model), engine.options_schema())
    with live_server(ServedModel("tool-caller", loaded, parse_tool_calls=hermes)) as server:
        yield server


def test_a_tool_call(tool_caller):
    base_url, _ = tool_caller
    openai = client(base_url)
    reply = openai.chat.completions.create(
        model="tool-caller", messages=WEATHER_QUESTION, tools=[WEATHER_TOOL], temperature=0, max_tokens=64
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None, choice
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    stream = openai.chat.completions.create(
        model="tool-caller",
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=64,
        stream=True,
    )
    calls = [c for chunk in stream if chunk.choices for c in chunk.choices[0].delta.tool_calls or []]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
