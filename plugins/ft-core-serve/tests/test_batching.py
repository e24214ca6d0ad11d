"""The request queue of ``ft-core serve``: requests arriving within the window form one batch, the queue has a
bound, and a request whose client left before its batch started is not generated."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from ft_core.api import ChatRequest
from ft_core_serve.batching import Batcher, ServerBusy


def request(text: str) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}])


async def collect(stream: Any) -> str:
    return "".join([delta.text async for delta in stream])


def test_requests_within_the_window_form_batches_of_at_most_max_batch_size(scripted):
    model = scripted(lambda r: r.messages[0]["content"].upper())

    async def main() -> list[str]:
        batcher = Batcher(model, max_batch_size=3, window_s=0.2, max_queue=10)
        await batcher.start()
        try:
            return await asyncio.gather(*(collect(batcher.stream(request(f"r{i}"))) for i in range(5)))
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == ["R0", "R1", "R2", "R3", "R4"]
    assert model.batches == [3, 2]


def test_a_full_queue_refuses_and_a_request_whose_client_left_is_skipped(scripted):
    release = threading.Event()

    def slow(r: ChatRequest) -> str:
        release.wait(10)
        return "done"

    model = scripted(slow)

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=1, window_s=0, max_queue=1)
        await batcher.start()
        try:
            running = asyncio.ensure_future(collect(batcher.stream(request("first"))))
            while not model.requests:  # the first request is generating (blocked in slow)
                await asyncio.sleep(0.01)
            waiting = batcher.stream(request("second"))
            waiting_task = asyncio.ensure_future(collect(waiting))
            await asyncio.sleep(0.05)  # queued behind the first
            with pytest.raises(ServerBusy, match="1 requests are waiting"):
                await collect(batcher.stream(request("third")))
            waiting_task.cancel()  # its client goes away before its batch starts
            release.set()
            assert await running == "done"
            await asyncio.sleep(0.1)
        finally:
            await batcher.stop()

    asyncio.run(main())
    assert [r.messages[0]["content"] for r in model.requests] == ["first"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(object(), max_batch_size=0, window_s=0.01, max_queue=1)  # type: ignore[arg-type]
