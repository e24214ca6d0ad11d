"""``gradient_checkpointing: offload``: the inputs each checkpointed decoder layer keeps for its recomputation go to
pinned CPU memory, copied on a side CUDA stream so the GPU keeps computing meanwhile.

PyTorch's own ``torch.autograd.graph.save_on_cpu`` (what transformers' ``offload`` uses) copies on the compute
stream and waits for each copy, pins a new host buffer for each tensor, and copies each one back only when the
backward pass asks for it. Here:

- each copy is queued on a side stream after the tensor is ready (``wait_stream``), and the GPU memory is kept from
  reuse until the copy is done (``record_stream``);
- the host copies live in one pinned arena (:class:`HostArena`), sized at a step's first copy for all the
  checkpointed layers and reused by every step once the autograd graphs holding the earlier copies are gone: a run
  pins memory once, in one allocation, where a new pinned buffer per tensor made its first steps seconds slower;
- where the run's largest micro-batch is known before training (:func:`reserve_for_largest_step`), that one
  allocation is made for it in a background thread while the trainer is set up, so that neither the first step
  nor a later, larger one waits for memory to be pinned;
- when the backward pass takes a tensor back, the copy back of the tensor saved before it (the next one the
  backward pass needs) starts on the side stream, so the host-to-device copy overlaps the layer's recomputation.

Tensors on the CPU, and small ones (under :data:`MIN_BYTES`), are kept as they are. Applied around each
checkpointed layer's checkpoint call (:func:`offload_checkpoints`), it sees what the checkpoint saves: with reentrant
checkpointing (the adapter default) the layer's input hidden states. It works with any transformers release (its
own ``offload`` argument arrived with ``activation_checkpointing_enable``).
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any

#: Saved tensors smaller than this stay on the GPU (a copy costs more than it frees).
MIN_BYTES = 1 << 20

#: Offsets into the arena are multiples of this (any dtype's alignment; the copy engines like 512-byte rows).
ALIGNMENT = 512

#: A step's arena holds this much more than its first tensor times the layers (its position embeddings, and later
#: steps with more tokens).
STEP_HEADROOM = 1.25

#: The arena's first chunk is at least this large; each later chunk is as large as all before it together.
FIRST_CHUNK = 64 << 20


class HostArena:
    """A bump allocator over chunks of host memory (pinned when ``pin``): :meth:`take` hands out aligned byte
    slices, :meth:`reset` starts over from the first chunk. A request that fits no chunk left adds one as large as
    all the others together (at least the request), so a run pins a few chunks in its first steps and then none."""

    def __init__(self, pin: bool = True) -> None:
        self.pin = pin
        self.chunks: list[Any] = []
        self._chunk = 0  # the chunk :meth:`take` hands out from
        self._offset = 0

    @property
    def capacity(self) -> int:
        """Bytes held, in all chunks."""
        return sum(chunk.numel() for chunk in self.chunks)

    @property
    def allocations(self) -> int:
        """How many chunks were allocated (pinned)."""
        return len(self.chunks)

    def take(self, nbytes: int) -> Any:
        """An uninitialised ``uint8`` tensor of ``nbytes`` bytes inside the arena."""
        import torch

        start = -(-self._offset // ALIGNMENT) * ALIGNMENT
        while self._chunk < len(self.chunks) and start + nbytes > self.chunks[self._chunk].numel():
            self._chunk, start = self._chunk + 1, 0
        if self._chunk == len(self.chunks):
            size = max(nbytes, self.capacity, FIRST_CHUNK)
            self.chunks.append(torch.empty(size, dtype=torch.uint8, pin_memory=self.pin))
        self._offset = start + nbytes
        return self.chunks[self._chunk][start : start + nbytes]

    def reset(self) -> None:
        """Hand out the chunks from the beginning again (every slice taken so far must be done with)."""
        self._chunk = self._offset = 0

    def reserve(self, nbytes: int) -> None:
        """Hold at least ``nbytes`` in all: when the arena holds less, add one chunk making up the difference (at
        least as large as the others together), so a step's need is pinned in one allocation."""
        import torch

        capacity = self.capacity
        if capacity < nbytes:
            size = max(nbytes - capacity, capacity)
            self.chunks.append(torch.empty(size, dtype=torch.uint8, pin_memory=self.pin))


class AsyncHostOffload:
    """A pair of saved-tensor hooks (``torch.autograd.graph.saved_tensors_hooks(offload.pack, offload.unpack)``)
    moving large CUDA tensors saved for the backward pass to pinned host memory on a side stream, and back one
    tensor ahead of the backward pass."""

    def __init__(self, min_bytes: int | None = None, layers: int = 0) -> None:
        self.min_bytes = MIN_BYTES if min_bytes is None else min_bytes
        #: Checkpointed layers: each saves about what the first saves, so a step's first tensor sizes the arena.
        self.layers = layers
        #: How many tensors went to host memory.
        self.offloaded = 0
        #: How many came back through a prefetch started while the backward pass used the one saved after them.
        self.prefetched = 0
        self.arena = HostArena()
        self._reserving: threading.Thread | None = None  # pinning the arena in the background
        self._streams: dict[int, Any] = {}
        self._live: list[weakref.ref[_Offloaded]] = []  # the autograd graph still holds them; in saving order

    def _side_stream(self, device: Any) -> Any:
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        if index not in self._streams:
            self._streams[index] = torch.cuda.Stream(device=index)
        return self._streams[index]

    def reserve_in_background(self, nbytes: int, device: int) -> None:
        """Pin ``nbytes`` of arena (:meth:`HostArena.reserve`) in a background thread (CUDA ``device``'s
        context); the first :meth:`pack` waits for it."""
        import torch

        def reserve() -> None:
            if torch.cuda.is_available():
                torch.cuda.set_device(device)
            self.arena.reserve(nbytes)

        self._reserving = threading.Thread(target=reserve, name="ft-core-pin-arena", daemon=True)
        self._reserving.start()

    def wait_reserved(self) -> None:
        """Wait for a :meth:`reserve_in_background` under way."""
        if self._reserving is not None:
            self._reserving.join()
            self._reserving = None

    def pack(self, tensor: Any) -> Any:
        import torch

        nbytes = tensor.numel() * tensor.element_size()
        if not tensor.is_cuda or nbytes < self.min_bytes:
            return tensor
        self.wait_reserved()
        self._live = [ref for ref in self._live if ref() is not None]
        if not self._live:  # the graphs holding earlier copies are gone: their arena slices are free again
            self.arena.reset()
            self.arena.reserve(int(nbytes * self.layers * STEP_HEADROOM))
        stream = self._side_stream(tensor.device)
        stream.wait_stream(torch.cuda.current_stream(tensor.device))
        host = self.arena.take(nbytes).view(tensor.dtype).view(tensor.shape)
        with torch.cuda.stream(stream):
            host.copy_(tensor, non_blocking=True)
        tensor.record_stream(stream)
        copied = torch.cuda.Event()
        copied.record(stream)
        self.offloaded += 1
        packed = _Offloaded(tensor.device, host, copied)
        self._live.append(weakref.ref(packed))
        return packed

    def unpack(self, packed: Any) -> Any:
        import torch

        if not isinstance(packed, _Offloaded):
            return packed
        compute = torch.cuda.current_stream(packed.device)
        if packed.back is None:
            compute.wait_event(packed.copied)
            tensor = packed.host.to(packed.device, non_blocking=True)
        else:  # prefetched (a graph kept for a second backward pass copies it back again next time)
            (tensor, arrived), packed.back = packed.back, None
            compute.wait_event(arrived)
            tensor.record_stream(compute)
            self.prefetched += 1
        packed.unpacked = True
        self._prefetch_before(packed)
        return tensor

    def _prefetch_before(self, packed: _Offloaded) -> None:
        """Start copying back the tensor saved just before ``packed`` when the backward pass has not taken it yet:
        it needs it next."""
        import torch

        live = [ref() for ref in self._live]
        index = next((i for i, item in enumerate(live) if item is packed), 0)
        previous = live[index - 1] if index > 0 else None
        if previous is None or previous.unpacked or previous.back is not None:
            return
        stream = self._side_stream(previous.device)
        with torch.cuda.stream(stream):
            stream.wait_event(previous.copied)
            tensor = previous.host.to(previous.device, non_blocking=True)
            arrived = torch.cuda.Event()
            arrived.record(stream)
        previous.back = (tensor, arrived)

    def hooks(self) -> Any:
        """The context manager installing the hooks."""
        import torch

        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Offloaded:
    """A tensor's pinned host copy, its device, the event marking the end of the copy, and (once prefetched) the
    copy back on the GPU with the event marking its arrival."""

    __slots__ = ("__weakref__", "back", "copied", "device", "host", "unpacked")

    def __init__(self, device: Any, host: Any, copied: Any) -> None:
        self.device, self.host, self.copied = device, host, copied
        self.back: tuple[Any, Any] | None = None
        self.unpacked = False


def installed_offload(model: Any) -> AsyncHostOffload | None:
    """The :class:`AsyncHostOffload` that :func:`offload_checkpoints` installed on ``model``'s layers, if any."""
    for module in model.modules():
        offload = getattr(module, "ft_host_offload", None)
        if isinstance(offload, AsyncHostOffload):
            return offload
    return None


def offload_checkpoints(model: Any, offload: AsyncHostOffload | None = None) -> int:
    """Run every checkpointed layer's checkpoint call of ``model`` under ``offload``'s hooks (by default the one
    installed before, so that a re-application keeps its arena); returns the number of layers wrapped. Call after
    checkpointing is turned on (each layer then has ``_gradient_checkpointing_func``)."""
    offload = offload or installed_offload(model) or AsyncHostOffload()
    wrapped = 0
    for module in model.modules():
        function = getattr(module, "_gradient_checkpointing_func", None)
        if not getattr(module, "gradient_checkpointing", False) or function is None:
            continue
        module.ft_host_offload = offload
        if getattr(function, "ft_offloaded", False):
            wrapped += 1
            continue

        @functools.wraps(function)
        def checkpoint_offloaded(*args: Any, _checkpoint: Any = function, **kwargs: Any) -> Any:
            with offload.hooks():
                return _checkpoint(*args, **kwargs)

        checkpoint_offloaded.ft_offloaded = True  # type: ignore[attr-defined]
        module._gradient_checkpointing_func = checkpoint_offloaded
        wrapped += 1
    offload.layers = max(offload.layers, wrapped)
    return wrapped


def reserve_for_largest_step(model: Any, tokens: int, bytes_per_token: int, device: int) -> int:
    """Start pinning, in the background (CUDA ``device``'s context), the arena that a micro-batch of ``tokens``
    tokens (the run's largest) offloads from ``model``'s checkpointed layers (``bytes_per_token`` per layer: hidden
    size x element size); returns the bytes asked for (0 when no offloading is installed)."""
    offload = installed_offload(model)
    if offload is None or tokens <= 0:
        return 0
    nbytes = int(tokens * bytes_per_token * offload.layers * STEP_HEADROOM)
    offload.reserve_in_background(nbytes, device)
    return nbytes
