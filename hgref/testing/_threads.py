"""Run the battery single-threaded (BLAS and torch), restoring the thread counts afterwards.

The battery's matrices are tiny (128 × 784 × 8): threads only add synchronisation, and on a
busy machine spinning BLAS threads slow a battery run down ten-fold (measured here: all ten
oracle prefixes 36 s with 2 OpenBLAS threads under load, 3.9 s with one). Uses
``threadpoolctl`` when installed, else the OpenBLAS ``*_set_num_threads`` symbol of the
loaded library (Linux); does nothing where neither is available.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys

__all__ = ["single_threaded"]

_OPENBLAS = ("scipy_openblas_{}_num_threads64_", "scipy_openblas_{}_num_threads",
             "openblas_{}_num_threads64_", "openblas_{}_num_threads")


def _openblas_controls():
    """(get, set) pairs of every loaded OpenBLAS (empty when none is found)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return []
    controls = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pattern in _OPENBLAS:
            get, put = (getattr(lib, pattern.format(k), None) for k in ("get", "set"))
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                controls.append((get, put))
                break
    return controls


@contextlib.contextmanager
def single_threaded():
    """Context manager: one BLAS thread and one torch thread (if torch is imported)."""
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(1))
        except ImportError:
            for get, put in _openblas_controls():
                before = get()
                put(1)
                stack.callback(put, before)
        torch = sys.modules.get("torch")
        if torch is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            stack.callback(torch.set_num_threads, before)
        yield
