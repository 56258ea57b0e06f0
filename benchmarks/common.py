"""Shared helpers for the benchmarks: timing by interleaved repetitions, machine facts, results.

Every benchmark reports *ratios measured within one run* (these machines are noisy): the
numerator and denominator are timed alternately, and the median of per-repetition ratios is
reported together with the absolute medians.
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def machine():
    """Facts about this machine, recorded with every result."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    }


def timeit(fn, repeat=5, warmup=1):
    """Median wall-clock seconds of ``fn()`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ratio(numerator, denominator, repeat=5, warmup=1):
    """Median of interleaved per-repetition time ratios numerator/denominator.

    Returns ``{"ratio", "numerator_s", "denominator_s"}`` (seconds are medians).
    """
    for _ in range(warmup):
        numerator()
        denominator()
    num, den, ratios = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        denominator()
        t1 = time.perf_counter()
        numerator()
        t2 = time.perf_counter()
        den.append(t1 - t0)
        num.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return {"ratio": statistics.median(ratios), "numerator_s": statistics.median(num),
            "denominator_s": statistics.median(den)}


def write(name, payload):
    """Write ``benchmarks/results/<name>.json`` atomically with the machine facts."""
    from hgref.io import atomic_write_json

    payload = dict(payload, machine=machine())
    path = atomic_write_json(RESULTS / f"{name}.json", payload)
    print(f"wrote {path}")
    return path
