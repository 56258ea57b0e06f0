"""Thread-pool limits: one BLAS (and torch) thread where matrices are small.

hgref's own workloads (MNIST MLPs, batch ≤ 128; tiny test batteries) are too small for
multi-threaded BLAS: on the 2-core development machine a (50, 50) MLP gradient took 7.8 ms
with 2 OpenBLAS threads and 1.9 ms with one, and the hgref.testing battery 36 s vs 3.9 s
under load. NumPy is already imported when these run, so environment variables come too
late; ``threadpoolctl`` sets the loaded libraries' pools directly.
"""
from __future__ import annotations

import contextlib
import sys

from threadpoolctl import threadpool_limits

__all__ = ["limit_threads", "single_threaded"]


def limit_threads(n=1):
    """Limit BLAS/OpenMP pools of this process to ``n`` threads from now on."""
    threadpool_limits(limits=int(n))


@contextlib.contextmanager
def single_threaded():
    """Context manager: one BLAS thread and one torch thread (if torch is imported),
    restoring both afterwards."""
    with threadpool_limits(limits=1):
        torch = sys.modules.get("torch")
        before = torch.get_num_threads() if torch is not None else None
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)
