"""The checkpoint state of a ring buffer of numpy arrays, shared by the agents' multi-task replay
(:class:`mtrl.agents.buffer.MultiTaskReplayBuffer`) and IGBv2's weight-agent replay
(:class:`mtrl.aggregators._weight_sac.WeightReplay`). It lives below both packages: aggregators import nothing
from ``mtrl.agents`` (``tests/test_architecture.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class RingState:
    """Mixin: ``state_dict`` / ``load_state_dict`` of ``self.data`` (``{field: [rows, capacity, ...]}``),
    ``self.ptr``, ``self.size`` and ``self.capacity``. Only the filled part of the arrays is saved, as tensors,
    so that checkpoints load with ``torch.load(weights_only=True)``."""

    data: dict[str, np.ndarray]
    ptr: int
    size: int
    capacity: int
    capacity_label = "replay capacity"  # how a capacity mismatch is named in the error

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the arrays (as tensors), pointer, size and capacity."""
        return {
            "ptr": self.ptr,
            "size": self.size,
            "capacity": self.capacity,
            **{k: torch.from_numpy(np.ascontiguousarray(v[:, : self.size])) for k, v in self.data.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a different capacity or field shape is refused (``ValueError``, one line)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"{self.capacity_label} differs: checkpoint {state['capacity']}, run {self.capacity}")
        ptr, size = int(state["ptr"]), int(state["size"])
        # the ring's invariants (a damaged or hand-edited checkpoint would otherwise sample unwritten rows or fail
        # later with an IndexError): 0 <= size <= capacity, 0 <= ptr < capacity, ptr == size until the ring is full
        if not (0 <= size <= self.capacity and 0 <= ptr < self.capacity and (size == self.capacity or ptr == size)):
            raise ValueError(f"{self.capacity_label} {self.capacity}: checkpoint pointer {ptr} / size {size} are "
                             "out of range")  # fmt: skip
        for k, v in self.data.items():
            arr = state[k].numpy()
            if arr.shape[0] != v.shape[0] or arr.shape[1] != size or arr.shape[2:] != v.shape[2:]:
                raise ValueError(f"replay field {k!r}: checkpoint shape {tuple(arr.shape)}, run {v.shape} "
                                 f"(size {size})")  # fmt: skip
        self.ptr, self.size = ptr, size
        for k, v in self.data.items():
            v[:, :size] = state[k].numpy()
