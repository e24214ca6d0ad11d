"""``gradient_checkpointing: offload``: the inputs each checkpointed decoder layer keeps for its recomputation go to
pinned CPU memory, copied on a side CUDA stream so the GPU keeps computing meanwhile.

PyTorch's own ``torch.autograd.graph.save_on_cpu`` (what transformers' ``offload`` uses) copies on the compute
stream and waits for each copy: the host stalls once per layer while the GPU drains its queue. Here each copy is
queued on a side stream after the tensor is ready (``wait_stream``), the GPU memory is kept from reuse until the
copy is done (``record_stream``), and the backward pass copies the tensor back on the compute stream after the
copy's event. Tensors on the CPU, and small ones (under :data:`MIN_BYTES`), are kept as they are.

Applied around each checkpointed layer's checkpoint call (:func:`offload_checkpoints`), it sees what the
checkpoint saves: with reentrant checkpointing (the adapter default) the layer's input hidden states. It works with
any transformers release (its own ``offload`` argument arrived with ``activation_checkpointing_enable``).
"""

from __future__ import annotations

import functools
from typing import Any

#: Saved tensors smaller than this stay on the GPU (a copy costs more than it frees).
MIN_BYTES = 1 << 20


class AsyncHostOffload:
    """A pair of saved-tensor hooks (``torch.autograd.graph.saved_tensors_hooks(offload.pack, offload.unpack)``)
    moving large CUDA tensors saved for the backward pass to pinned host memory on a side stream."""

    def __init__(self, min_bytes: int | None = None) -> None:
        self.min_bytes = MIN_BYTES if min_bytes is None else min_bytes
        #: How many tensors went to host memory.
        self.offloaded = 0
        self._streams: dict[int, Any] = {}

    def _side_stream(self, device: Any) -> Any:
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        if index not in self._streams:
            self._streams[index] = torch.cuda.Stream(device=index)
        return self._streams[index]

    def pack(self, tensor: Any) -> Any:
        import torch

        if not tensor.is_cuda or tensor.numel() * tensor.element_size() < self.min_bytes:
            return tensor
        stream = self._side_stream(tensor.device)
        stream.wait_stream(torch.cuda.current_stream(tensor.device))
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        with torch.cuda.stream(stream):
            host.copy_(tensor, non_blocking=True)
        tensor.record_stream(stream)
        copied = torch.cuda.Event()
        copied.record(stream)
        self.offloaded += 1
        return _Offloaded(tensor.device, host, copied)

    def unpack(self, packed: Any) -> Any:
        import torch

        if not isinstance(packed, _Offloaded):
            return packed
        torch.cuda.current_stream(packed.device).wait_event(packed.copied)
        return packed.host.to(packed.device, non_blocking=True)

    def hooks(self) -> Any:
        """The context manager installing the hooks."""
        import torch

        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Offloaded:
    """A tensor's pinned host copy, its device, and the event marking the end of the copy."""

    __slots__ = ("copied", "device", "host")

    def __init__(self, device: Any, host: Any, copied: Any) -> None:
        self.device, self.host, self.copied = device, host, copied


def offload_checkpoints(model: Any, offload: AsyncHostOffload | None = None) -> int:
    """Run every checkpointed layer's checkpoint call of ``model`` under ``offload``'s hooks; returns the number of
    layers wrapped. Call after checkpointing is turned on (each layer then has ``_gradient_checkpointing_func``)."""
    offload = offload or AsyncHostOffload()
    wrapped = 0
    for module in model.modules():
        function = getattr(module, "_gradient_checkpointing_func", None)
        if not getattr(module, "gradient_checkpointing", False) or function is None:
            continue
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
    return wrapped
