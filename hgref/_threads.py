"""Thread-pool limits: one BLAS thread where matrices are small, overridable by the user.

hgref's own workloads (MNIST MLPs, batch ≤ 128; tiny test batteries) are too small for
multi-threaded BLAS: on the 2-core development machine a (50, 50) MLP gradient took 7.8 ms
with 2 OpenBLAS threads and 1.9 ms with one, and the hgref.testing battery 36 s vs 3.9 s
under load. NumPy is already imported when these run, so environment variables come too
late; ``threadpoolctl`` sets the loaded libraries' pools directly.

Policy of the library calls (:func:`hgref.run`, :func:`hgref.oracle.hypergradient`,
:func:`hgref.lrsopt.lrs_opt_pgd`, …, decorated with :func:`library_call`): while they run,
the BLAS pools are limited to :func:`get_threads` threads — 1 by default, the environment
variable ``HGREF_THREADS`` or :func:`set_threads` otherwise (``"all"``: leave the pools as
they are) — and restored afterwards. Only BLAS pools are touched (torch's OpenMP pool is
the user's: ``torch.set_num_threads``). Entering the limit costs ≈ 12 µs (a cached
``ThreadpoolController``), nothing next to one MNIST gradient (≈ 0.7 ms).
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys

from threadpoolctl import ThreadpoolController, threadpool_limits

__all__ = ["limit_threads", "single_threaded", "set_threads", "get_threads", "blas_threads",
           "library_call"]

_ALL = "all"
_setting = None          # set_threads() value; None: HGREF_THREADS or the default 1
_controller = None


def _parse(value, name):
    if value is None or value == _ALL:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid {name}: {value!r}; accepted values: an integer >= 1, 'all' or None")
    return value


def set_threads(n):
    """BLAS threads used inside hgref's library calls: an int ≥ 1, ``"all"`` (do not limit)
    or ``None`` (back to ``HGREF_THREADS``, default 1). Returns the previous setting.

    >>> previous = set_threads(2); get_threads()
    2
    >>> _ = set_threads(previous)
    """
    global _setting
    previous, _setting = _setting, _parse(n, "n")
    return previous


def get_threads():
    """The BLAS thread count hgref's library calls use (an int, or ``"all"``)."""
    if _setting is not None:
        return _setting
    env = os.environ.get("HGREF_THREADS")
    return 1 if env in (None, "") else _parse(env, "HGREF_THREADS")


@contextlib.contextmanager
def blas_threads(n=None):
    """Context manager: BLAS pools limited to ``n`` threads (default :func:`get_threads`)."""
    global _controller
    n = get_threads() if n is None else _parse(n, "n")
    if n == _ALL:
        yield
        return
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=n, user_api="blas"):
        yield


def library_call(fn):
    """Decorator: run ``fn`` under :func:`blas_threads` (the library's thread policy)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with blas_threads():
            return fn(*args, **kwargs)
    return wrapper


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
