"""Memory of the reverse mode's stored sweep: one buffer, touched once, reused across calls.

:func:`hgref.torch.schedule_hypergradient` keeps T states and gradients: T·(2 + b)·n numbers
(b buffers of the dynamics, n weights), 2.65 GB in float32 for 784-500-500-10 at T = 512.
Allocated tensor by tensor, every call touches that memory afresh, and on a KVM guest that
first touch, not the arithmetic, dominates: measured on 2 cores (784-500-500-10, float32,
SGD), a first call at T = 128 took 19–27 ms a step, a call on memory touched before 12–14 ms
(plain torch SGD: 3.8 ms a step). So the sweep writes into one flat buffer that

* is allocated on the CPU with ``madvise(MADV_HUGEPAGE)`` (2 MiB pages where the kernel's
  transparent huge pages allow it: the guest's page faults fall from ≈ 1000 to ≈ 3 a step,
  and 2.65 GB is first touched in 1.7 s instead of 3.2 s), and
* lives in a :class:`Workspace` that :func:`hgref.torch.lrs_opt` keeps across its outer
  iterations (pass one to ``schedule_hypergradient(workspace=…)`` to do the same), so only
  the first iteration touches new memory: 3.43× / 3.03× / 3.31× plain torch SGD at
  T = 32 / 128 / 512 against 3.39× / 4.27× / 5.16× before (two ``run_all.py --quick``
  invocations, 2026-12-02).

On CUDA the buffer is a plain ``torch.empty`` (torch's caching allocator already reuses it).
"""
from __future__ import annotations

import mmap

import numpy as np
import torch

__all__ = ["Workspace"]


def _allocate(numel, dtype, device):
    """An uninitialised 1-d tensor; on the CPU in memory advised for transparent huge pages."""
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or not hasattr(mmap, "MADV_HUGEPAGE") or nbytes < 1 << 22:
        return torch.empty(numel, dtype=dtype, device=device)
    region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region.madvise(mmap.MADV_HUGEPAGE)
    except OSError:                     # THP disabled: plain pages, still one region
        pass
    return torch.from_numpy(np.frombuffer(region, dtype=np.uint8)).view(dtype)


class Workspace:
    """A reusable buffer for :func:`hgref.torch.schedule_hypergradient`'s stored sweep.

    ``buffer(numel, dtype, device)`` returns a 1-d tensor of at least ``numel`` elements,
    the same memory as the last call when it is large enough and of the same dtype and
    device. The memory is held until the workspace is dropped or :meth:`release` is called.

    >>> ws = Workspace()
    >>> ws.buffer(10, torch.float32, torch.device("cpu")).shape
    torch.Size([10])
    """

    def __init__(self):
        self._buf = None

    def buffer(self, numel, dtype, device):
        b = self._buf
        if b is None or b.numel() < numel or b.dtype != dtype or b.device != torch.device(device):
            self._buf = None                # free the old one before allocating the new
            self._buf = b = _allocate(numel, dtype, torch.device(device))
        return b[:numel]

    def release(self):
        """Drop the buffer (its memory returns to the system once no view of it is alive)."""
        self._buf = None


class SweepStore:
    """k slots over one buffer: slot i holds a state (weights, buffers) and a gradient.

    Shapes per slot: ``weights`` and each of the ``n_buffers`` buffer lists and ``grad``
    are lists of tensors shaped as ``shapes`` (the flat parameter order).
    """

    def __init__(self, k, shapes, n_buffers, dtype, device, workspace=None):
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        n, parts = sum(self.sizes), 2 + n_buffers
        ws = workspace if workspace is not None else Workspace()
        self._flat = ws.buffer(k * parts * n, dtype, device).view(k, parts, n)

    def _split(self, flat):
        out, o = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(flat[o:o + size].view(shape))
            o += size
        return out

    def weights(self, i):
        return self._split(self._flat[i, 0])

    def grad(self, i):
        return self._split(self._flat[i, 1])

    def buffers(self, i):
        return tuple(self._split(self._flat[i, 2 + j]) for j in range(self._flat.shape[1] - 2))
