"""The built-in ``hf`` engine's ``ChatModel.stream_batch``, which the server's batches run on: one left-padded
``generate`` call whose rows stream the same replies as one-by-one requests, each with its own ``max_new_tokens``
and stop strings."""

from __future__ import annotations

from typing import Any

import pytest

from ft_core.api import ChatRequest, ChatTarget, SamplingOptions


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory, serve_plugins: Any) -> Any:
    from ft_core.testing.tiny import save_tiny_model_dir

    path = save_tiny_model_dir(str(tmp_path_factory.mktemp("engine-batching")))

    def load_model(dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    engine = serve_plugins.get("inference_engine", "hf")
    return engine.load(ChatTarget("tiny", path, load_model), engine.options_schema())


def test_stream_batch_rows_equal_one_by_one_replies(hf_model):
    requests = [
        ChatRequest(
            [{"role": "user", "content": "hi " * (n + 1)}],
            sampling=SamplingOptions(max_new_tokens=4 + 6 * n, stop=("e",) if n == 2 else ()),
        )
        for n in range(5)
    ]
    texts, last = [""] * 5, [None] * 5
    for index, delta in hf_model.stream_batch(requests):
        assert last[index] is None, "a delta after the request's last one"
        texts[index] += delta.text
        if delta.finish_reason is not None:
            last[index] = delta
    for request, text, final in zip(requests, texts, last, strict=True):
        alone = hf_model.complete(request)
        assert (text, final.finish_reason, final.usage) == (alone.text, alone.finish_reason, alone.usage)
    assert [d.usage.completion_tokens for d in last if d.finish_reason == "length"] == [
        r.sampling.max_new_tokens for r, d in zip(requests, last, strict=True) if d.finish_reason == "length"
    ]


def test_an_abandoned_batch_stream_leaves_the_model_usable(hf_model):
    requests = [
        ChatRequest([{"role": "user", "content": "hi"}], sampling=SamplingOptions(max_new_tokens=200))
    ] * 2
    stream = hf_model.stream_batch(requests)
    next(stream)
    stream.close()  # the consumer went away: generation stops
    reply = hf_model.complete(
        ChatRequest([{"role": "user", "content": "hi"}], sampling=SamplingOptions(max_new_tokens=3))
    )
    assert reply.usage.completion_tokens == 3
