"""Limit the BLAS thread pool of this process (experiments run one worker per core).

With one process per core, multi-threaded OpenBLAS only adds synchronisation: on the
2-core development machine the MNIST gradient of a (50, 50) MLP took 7.8 ms with 2 BLAS
threads and 1.9 ms with 1 (``hgref schedules`` / ``hgref hd`` set 1 by default). NumPy is
already imported when the CLI starts, so the environment variables come too late; this
calls OpenBLAS's own setter through ctypes (best effort: a no-op for other BLAS).
"""
from __future__ import annotations

import ctypes

__all__ = ["limit_blas_threads"]

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads_64_",
            "scipy_openblas_set_num_threads", "openblas_set_num_threads64_", "openblas_set_num_threads")


def _loaded_blas_libraries():
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line and ".so" in line}
    except OSError:  # pragma: no cover - not Linux
        return []
    return sorted(paths)


def limit_blas_threads(n=1) -> int:
    """Set every loaded OpenBLAS to ``n`` threads; return how many libraries were set."""
    done = 0
    for path in _loaded_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:  # pragma: no cover
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(int(n)))
                done += 1
                break
    return done
