"""The typed inference API on the built-in ``hf`` engine (ft_core.engine.inference.hf), ``ft-core chat`` and
what chat accepts as a target (ft_core.engine.inference.target). Tiny random-init models only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import ClassVar

import pytest

from ft_core.api.errors import FtCoreError
from ft_core.api.inference import ChatRequest, ChatResponse, ChatTarget, SamplingOptions
from ft_core.engine.inference.hf import HfEngine, HfEngineOptions, find_stop, safe_end
from ft_core.engine.inference.target import resolve_chat_target
from ft_core.testing.tiny import save_tiny_model_dir

HI = [{"role": "user", "content": "hi"}]
LONGER = [
    {"role": "system", "content": "You are a helpful AI assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
TOOL_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\nTools: ' + (tools | tojson) + '<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-chat")), chat_template=TOOL_TEMPLATE)


def _load(path: str, stop_words: tuple[str, ...] = ()):
    def load_model(dtype):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    target = ChatTarget(
        description="tiny", tokenizer_path=path, load_model=load_model, stop_words=list(stop_words)
    )
    return HfEngine().load(target, HfEngineOptions(device="cpu"))


@pytest.fixture(scope="module")
def chat_model(model_dir: str):
    return _load(model_dir)


def _greedy(model, messages=HI, max_new_tokens: int = 40, **sampling) -> ChatResponse:
    return model.complete(
        ChatRequest(messages, sampling=SamplingOptions(max_new_tokens=max_new_tokens, **sampling))
    )


# --------------------------------------------------------------------------- stop-string helpers
def test_safe_end_holds_back_what_could_begin_a_stop_string():
    assert safe_end("hello wor", ["world"]) == len("hello ")
    assert safe_end("hello", ["xyz"]) == 5
    assert safe_end("ab<end", ["<end_of_turn>", "d"]) == 2
    assert find_stop("a STOP b stop", ["stop", "STOP"]) == 2
    assert find_stop("abc", ["x"]) is None


# --------------------------------------------------------------------------- stop, length, usage
def test_max_new_tokens_ends_with_length_and_counts_tokens(chat_model):
    reply = _greedy(chat_model, max_new_tokens=7)
    assert reply.finish_reason == "length"
    assert reply.usage.completion_tokens == 7
    assert reply.text


def test_prompt_tokens_are_the_rendered_prompt(chat_model):
    tokenizer = chat_model.tokenizer
    rendered = tokenizer.apply_chat_template(LONGER, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    expected = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    reply = _greedy(chat_model, LONGER, max_new_tokens=2)
    assert reply.usage.prompt_tokens == expected
    assert reply.usage.total_tokens == expected + 2


def test_tools_reach_the_chat_template(chat_model):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    bare = _greedy(chat_model, max_new_tokens=1).usage.prompt_tokens
    request = ChatRequest(HI, tools=tools, sampling=SamplingOptions(max_new_tokens=1))
    with_tools = chat_model.complete(request).usage.prompt_tokens
    rendered = chat_model.tokenizer.apply_chat_template(
        HI, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert "get_weather" in rendered
    assert with_tools == len(chat_model.tokenizer(rendered, add_special_tokens=False)["input_ids"]) > bare


def _stop_candidate(text: str) -> str:
    """A substring of ``text`` made of 3 printable characters, well after its start."""
    for start in range(3, len(text) - 3):
        piece = text[start : start + 3]
        if piece.isprintable() and "\ufffd" not in piece:
            return piece
    raise AssertionError(f"no usable stop string in {text!r}")


def test_a_stop_string_cuts_the_reply_right_before_it(chat_model):
    full = _greedy(chat_model, max_new_tokens=40)
    assert full.finish_reason == "length"
    stop = _stop_candidate(full.text)
    reply = _greedy(chat_model, max_new_tokens=40, stop=(stop,))
    assert reply.text == full.text[: full.text.index(stop)]
    assert reply.finish_reason == "stop"
    assert reply.usage.completion_tokens < 40
    streamed = list(
        chat_model.stream(ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=40, stop=(stop,))))
    )
    assert "".join(d.text for d in streamed) == reply.text
    assert streamed[-1].finish_reason == "stop" and all(d.finish_reason is None for d in streamed[:-1])


def test_a_stop_string_split_across_streamed_pieces_is_never_emitted(chat_model):
    request = ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=40))
    pieces = [d.text for d in chat_model.stream(request) if d.text]
    assert len(pieces) >= 2, pieces
    full = "".join(pieces)
    # The stop string spans the boundary between the first two streamed pieces.
    stop = pieces[0][-2:] + pieces[1][:3]
    cut = full.index(stop)
    deltas = list(
        chat_model.stream(ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=40, stop=(stop,))))
    )
    assert "".join(d.text for d in deltas) == full[:cut]
    assert deltas[-1].finish_reason == "stop"


def test_a_template_stop_word_of_several_tokens_ends_the_reply(model_dir, chat_model):
    full = _greedy(chat_model, max_new_tokens=40).text
    word = _stop_candidate(full)
    assert len(chat_model.tokenizer(word, add_special_tokens=False)["input_ids"]) >= 1
    reply = _greedy(_load(model_dir, stop_words=(word,)), max_new_tokens=40)
    assert (reply.text, reply.finish_reason) == (full[: full.index(word)], "stop")


def test_a_one_token_stop_word_ends_generation_as_a_token_and_is_not_shown(model_dir, chat_model):
    import torch

    tokenizer = chat_model.tokenizer
    prompt = chat_model.prompt_ids(ChatRequest(HI))
    ids = chat_model.model.generate(
        torch.tensor([prompt]), do_sample=False, max_new_tokens=40, eos_token_id=None, pad_token_id=0
    )[0, len(prompt) :].tolist()
    full = tokenizer.decode(ids, skip_special_tokens=True)

    def shown_by_id_only(
        token_id: int,
    ) -> bool:  # visible text, but its vocabulary string is not in the reply
        text = tokenizer.decode([token_id])
        return (
            token_id not in tokenizer.all_special_ids
            and tokenizer.convert_ids_to_tokens(token_id) not in full
            and text.strip().isprintable()
            and "\ufffd" not in text
        )

    step = next(i for i, t in enumerate(ids) if i >= 2 and shown_by_id_only(t))
    first = ids.index(ids[step])
    model = _load(model_dir, stop_words=(tokenizer.convert_ids_to_tokens(ids[step]),))
    reply = _greedy(model, max_new_tokens=40)
    assert reply.finish_reason == "stop"
    assert reply.usage.completion_tokens == first + 1
    assert reply.text == tokenizer.decode(ids[:first], skip_special_tokens=True)
    streamed = "".join(
        d.text for d in model.stream(ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=40)))
    )
    assert streamed == reply.text
    assert model.generate([ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=40))]) == [reply]


# --------------------------------------------------------------------------- sampling
def test_the_same_seed_samples_the_same_reply_and_different_seeds_differ(chat_model):
    import itertools

    import torch

    global_seeds = itertools.count(1000)

    def sample(seed: int) -> str:
        torch.manual_seed(next(global_seeds))  # the global RNG state must not matter
        return _greedy(chat_model, max_new_tokens=12, temperature=1.0, seed=seed).text

    assert sample(1) == sample(1)
    assert sample(2) == sample(2)
    replies = {sample(seed) for seed in range(5)}
    assert len(replies) >= 3, replies
    assert _greedy(chat_model, max_new_tokens=12).text not in replies or len(replies) >= 4


def test_greedy_decoding_is_deterministic_and_top_p_is_accepted(chat_model):
    assert _greedy(chat_model, max_new_tokens=10).text == _greedy(chat_model, max_new_tokens=10).text
    reply = _greedy(chat_model, max_new_tokens=5, temperature=0.7, top_p=0.5, seed=3)
    assert reply.usage.completion_tokens == 5


# --------------------------------------------------------------------------- batching, asyncio
def test_batched_generate_equals_one_by_one_greedy_replies(chat_model):
    full = _greedy(chat_model, max_new_tokens=30).text
    requests = [
        ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=30)),
        ChatRequest(LONGER, sampling=SamplingOptions(max_new_tokens=30)),
        ChatRequest(
            [{"role": "user", "content": "Translate hello world"}],
            sampling=SamplingOptions(max_new_tokens=30),
        ),
        ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=30, stop=(_stop_candidate(full),))),
        ChatRequest(LONGER, sampling=SamplingOptions(max_new_tokens=9)),  # a group of its own
    ]
    batched = chat_model.generate(requests)
    one_by_one = [chat_model.complete(r) for r in requests]
    assert batched == one_by_one
    assert batched[3].finish_reason == "stop" and batched[0].finish_reason == "length"
    assert batched[4].usage.completion_tokens == 9


def test_astream_yields_what_stream_yields(chat_model):
    request = ChatRequest(LONGER, sampling=SamplingOptions(max_new_tokens=15))

    async def collect():
        return [delta async for delta in chat_model.astream(request)]

    assert asyncio.run(collect()) == list(chat_model.stream(request))


def test_an_abandoned_stream_leaves_the_model_usable(chat_model):
    stream = chat_model.stream(ChatRequest(HI, sampling=SamplingOptions(max_new_tokens=200)))
    next(stream)
    stream.close()
    assert _greedy(chat_model, max_new_tokens=3).usage.completion_tokens == 3


# --------------------------------------------------------------------------- ft-core chat and its targets
def test_chat_cli_streams_a_reply(tiny_model_dir, capsys):
    from ft_core.cli import main

    assert main(["chat", tiny_model_dir, "-m", "hi", "--max-new-tokens", "5"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("User: hi\nAssistant: ")
    assert "tokens/s" not in captured.err
    assert main(["chat", tiny_model_dir, "-m", "hi", "--max-new-tokens", "5", "--verbose", "--seed", "1",
                 "--temperature", "0.8", "--top-p", "0.9", "--stop", "zzz"]) == 0  # fmt: skip
    assert "5 completion tokens" in capsys.readouterr().err


def test_chat_cli_rejects_bad_sampling_options(tiny_model_dir, capsys):
    from ft_core.cli import main

    assert main(["chat", tiny_model_dir, "-m", "hi", "--top-p", "0"]) == 2
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
    assert main(["chat", tiny_model_dir, "-m", "hi", "--stop", ""]) == 2
    assert "a stop string must not be empty" in capsys.readouterr().err


def test_a_missing_folder_is_not_taken_for_a_hub_id(tmp_path, monkeypatch, capsys):
    from ft_core.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["chat", "runs/nope", "-m", "hi"]) == 2
    err = capsys.readouterr().err
    assert "no such run folder or model: runs/nope" in err
    assert "manifest.json" in err and ".gguf" in err and "smollm2-135m-instruct" in err
    assert "hf download" not in err
    (tmp_path / "mine").mkdir()
    with pytest.raises(FtCoreError, match="no such run folder or model: mine/nope") as missing:
        resolve_chat_target("mine/nope", None)
    assert "hf download" not in str(missing.value)
    with pytest.raises(FtCoreError, match=r"no such run folder or model: \./nope"):
        resolve_chat_target("./nope", None)


def test_a_bare_org_name_is_a_hub_id_looked_up_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FtCoreError, match=r"'SomeOrg/some-model' is not in the Hugging Face") as missing:
        resolve_chat_target("SomeOrg/some-model", None)
    assert "HF_HUB_OFFLINE is set" in str(missing.value)


def test_a_folder_that_is_neither_a_run_nor_a_model_says_so(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{}")
    with pytest.raises(
        FtCoreError, match=r"neither a run folder \(no manifest\.json\) nor a Hugging Face model"
    ):
        resolve_chat_target(str(tmp_path), None)
    with pytest.raises(FtCoreError, match=r"holds checkpoints but no manifest\.json"):
        resolve_chat_target(str(tmp_path), None)


@pytest.mark.parametrize("status", ["running", "interrupted", "failed", "cancelled"])
def test_an_unfinished_run_says_how_to_resume(tmp_path, status):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"status": status}))
    (run / "config.yaml").write_text("model: {}\n")
    with pytest.raises(FtCoreError) as unfinished:
        resolve_chat_target(str(run), None)
    message = str(unfinished.value)
    assert "has not finished" in message
    assert f"ft-core run {Path(run) / 'config.yaml'}" in message
    assert {"running": "still running", "failed": "failed", "cancelled": "cancelled"}.get(
        status, status
    ) in message


def test_a_model_folder_is_a_chat_target(tiny_model_dir):
    target = resolve_chat_target(tiny_model_dir, None)
    assert target.tokenizer_path == tiny_model_dir
    assert target.stop_words == [] and target.system is None


def test_chat_tools_file_errors_name_the_file_before_loading(tiny_model_dir, tmp_path, capsys):
    from ft_core.cli import main

    bad = tmp_path / "tools.json"
    bad.write_text('[{"description": "no name"}]')
    assert main(["chat", tiny_model_dir, "-m", "hi", "--tools", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"--tools: {bad} entry 0: expected a function schema with a 'name'" in err and "loading" not in err
    assert main(["chat", tiny_model_dir, "-m", "hi", "--tools", str(tmp_path / "none.json")]) == 2
    assert "--tools: cannot read" in capsys.readouterr().err


def test_chat_offers_tools_and_shows_parsed_calls(tmp_path, capsys):
    from ft_core.api.toolcalls import hermes
    from ft_core.commands.chat import _Session

    class Replier:
        """Streams a fixed reply in the Hermes tool-call format and records the requests."""

        requests: ClassVar[list] = []

        def stream(self, request):
            self.requests.append(request)
            from ft_core.api.inference import ChatDelta

            yield ChatDelta('<tool_call>\n{"name": "get_weather", ')
            yield ChatDelta('"arguments": {"city": "Paris"}}\n</tool_call>', finish_reason="stop")

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    history: list = []
    session = _Session(Replier(), sampling=None, verbose=False, tools=tools, parse_tool_calls=hermes)
    session.turn(history, "Weather in Paris?", prefix="")
    assert '[tool call] get_weather({"city": "Paris"})' in capsys.readouterr().out
    assert Replier.requests[0].tools == tools
    assert history[-1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    }


def test_a_text_only_model_refuses_images(chat_model, tiny_model_dir, capsys):
    from ft_core.cli import main

    assert not chat_model.accepts_images
    request = ChatRequest([{"role": "user", "content": "<image>hi"}], images=[b"png"])
    with pytest.raises(FtCoreError, match=r"reads text only: the request carries 1 image\(s\)"):
        chat_model.complete(request)
    with pytest.raises(FtCoreError, match="reads text only"):
        chat_model.generate([request])
    # without images, '<image>' is plain text for a text model
    assert _greedy(chat_model, [{"role": "user", "content": "<image>hi"}], max_new_tokens=2).usage
    assert main(["chat", tiny_model_dir, "--image", "x.png", "-m", "hi"]) == 2
    assert "is not a vision-language model" in capsys.readouterr().err
