"""Batching of concurrent requests: a queue that collects the requests arriving within a short window into one
:meth:`ChatModel.stream_batch <ft_core.api.ChatModel.stream_batch>` call.

The first request of a batch waits at most ``window_s`` for others (requests that arrived while the previous
batch ran join at once), up to ``max_batch_size``; the batch then runs in a worker thread while the event loop
keeps accepting requests, which form the next batch (static batching: a running batch takes no new rows).
``max_batch_size=1`` serves the requests one at a time. Deltas go back to each request's own queue on the event
loop. A batch that fails before producing anything is retried one request at a time, so one bad request (a
conversation its chat template refuses) fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from ft_core.api import ChatDelta, ChatModel, ChatRequest


class ServerBusy(Exception):
    """More requests are waiting than the queue holds."""


class IncompleteReply(Exception):
    """The engine ended a batch without finishing one of its replies."""


@dataclass
class _Job:
    request: ChatRequest
    deltas: asyncio.Queue[ChatDelta | BaseException | None] = field(default_factory=asyncio.Queue)
    #: The client went away: skip the request if its batch has not started.
    abandoned: bool = False


class Batcher:
    """Collects concurrent chat requests into batches for one :class:`~ft_core.api.ChatModel`."""

    def __init__(self, model: ChatModel, max_batch_size: int, window_s: float, max_queue: int) -> None:
        if max_batch_size < 1 or window_s < 0 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1 and window_s >= 0")
        self.model = model
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.max_queue = max_queue
        self._incoming: asyncio.Queue[_Job] | None = None
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        #: Sizes of the batches run so far (for the logs and the tests).
        self.batch_sizes: list[int] = []

    async def start(self) -> None:
        """Start collecting (on the running event loop)."""
        self._incoming, self._arrived = asyncio.Queue(), asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="ft-core-serve-batcher")

    async def stop(self) -> None:
        """Stop collecting; requests still waiting for a batch fail."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._incoming is not None and not self._incoming.empty():
            self._incoming.get_nowait().deltas.put_nowait(ServerBusy("the server is shutting down"))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        """The reply to ``request``, delta by delta, generated in a batch with the requests around it. Raises
        :class:`ServerBusy` when the queue is full, or what the engine raised."""
        if self._incoming is None or self._arrived is None:
            raise RuntimeError("Batcher.start() was not called")
        if self._incoming.qsize() >= self.max_queue:
            raise ServerBusy(f"{self._incoming.qsize()} requests are waiting already; retry later")
        job = _Job(request)
        self._incoming.put_nowait(job)
        self._arrived.set()
        try:
            while (item := await job.deltas.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.abandoned = True

    async def _collect(self) -> None:
        assert self._incoming is not None and self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._incoming.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch_size:
                if not self._incoming.empty():
                    batch.append(self._incoming.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [job for job in batch if not job.abandoned]
            if batch:
                self.batch_sizes.append(len(batch))
                await loop.run_in_executor(None, self._run, batch, loop)

    def _run(self, batch: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        """Generate ``batch`` (in a worker thread), handing each delta to its request's queue."""

        def send(job: _Job, item: ChatDelta | BaseException | None) -> None:
            loop.call_soon_threadsafe(job.deltas.put_nowait, item)

        started: set[int] = set()
        ended: set[int] = set()
        try:
            for index, delta in self.model.stream_batch([job.request for job in batch]):
                started.add(index)
                send(batch[index], delta)
                if delta.finish_reason is not None:
                    ended.add(index)
                    send(batch[index], None)
        except Exception as exc:
            retry = (
                {index for index in range(len(batch)) if index not in started} if len(batch) > 1 else set()
            )
            for index, job in enumerate(batch):
                if index not in ended and index not in retry:
                    send(job, exc)
            for index in sorted(retry):
                self._run([batch[index]], loop)
            return
        for index, job in enumerate(batch):
            if index not in ended:
                send(job, IncompleteReply("the inference engine ended without finishing this reply"))
