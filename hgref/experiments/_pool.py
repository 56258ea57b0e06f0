"""Worker processes of a run table: they never outlive their parent, and stop at once.

* A worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides what
  to do) and takes SIGTERM's default action (it holds no state: records are written by the
  parent).
* Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` ends a worker the moment its parent dies, by
  SIGKILL included. Everywhere (and for start methods whose workers are not direct
  children): a daemon thread checks every 0.2 s that the parent is still there and ends
  the worker otherwise.
* :func:`stop` cancels the queued runs and ends the running workers (their runs are lost;
  finished ones are already saved), killing any that has not ended after ``timeout``.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

from .._threads import limit_threads

__all__ = ["init_worker", "stop", "signals_ignored"]

_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.2


def _set_pdeathsig(sig=signal.SIGKILL):
    """Ask Linux to send ``sig`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):   # pragma: no cover - no usable libc
        return False


def _parent_gone(ppid, parent):
    if os.getppid() != ppid:            # re-parented: the parent (or the fork server) died
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:             # pragma: no cover - pid reused by another user
        return True
    return False


def _watch(ppid, parent):
    while not _parent_gone(ppid, parent):
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


def init_worker(n_threads, parent):
    """``ProcessPoolExecutor`` initializer: signals, parent-death guard, ``n_threads`` BLAS threads.

    ``parent`` is the pid of the process that owns the run table.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ppid = os.getppid()
    if ppid == parent:
        _set_pdeathsig()
    if _parent_gone(ppid, parent):      # the parent died before the guard was in place
        os._exit(1)
    threading.Thread(target=_watch, args=(ppid, parent), name="hgref-parent-watch", daemon=True).start()
    limit_threads(n_threads)


@contextlib.contextmanager
def signals_ignored():
    """Ignore SIGINT and SIGTERM for a short cleanup (main thread only), then restore them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def stop(pool, timeout=1.0):
    """Cancel ``pool``'s queued runs and end its workers now; wait at most ``timeout`` + 0.5 s."""
    procs = list((getattr(pool, "_processes", None) or {}).values())   # before shutdown clears it
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(OSError, ValueError):
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(0.5)
    if manager is not None:     # it sees the dead workers and ends; joined now, it cannot
        manager.join(max(0.1, deadline - time.monotonic()))   # trip interpreter exit later
