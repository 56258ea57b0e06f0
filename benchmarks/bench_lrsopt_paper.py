"""Seconds per LRS-OPT outer iteration at the paper's width, NumPy oracle vs torch reverse mode (CPU).

Usage: ``python benchmarks/bench_lrsopt_paper.py [--steps 16 32] [--threads 1]`` →
``benchmarks/results/lrsopt_paper.json``.

One outer iteration is one reverse-mode hypergradient over T steps (the outer step itself is
negligible). Both paths are linear in T (one forward and one reverse step per SGD step), so
they are timed at small T, interleaved within this process, and extrapolated to T = 512;
the two T values check the linearity. Projected wall time: 5000 iterations × 4 seeds
(the paper's LRS-OPT protocol, ``hgref schedules --paper-scale``), run one after another.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from common import RESULTS, machine  # noqa: E402

from hgref import dynamics as D  # noqa: E402
from hgref.io import atomic_write_json  # noqa: E402
from hgref.oracle import hypergradient  # noqa: E402
from hgref.problems import mnist_mlp  # noqa: E402


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "lrsopt_paper.json"))
    args = ap.parse_args()
    import torch

    from hgref.torch import schedule_hypergradient
    from hgref.torch.mnist import mnist_torch
    torch.set_num_threads(args.threads)
    out = {"machine": machine(), "load_before": os.getloadavg(), "torch_threads": args.threads,
           "iterations": 5000, "seeds": 4, "rows": []}
    for hidden in ((500, 500), (500, 500, 500)):
        problem = mnist_mlp(hidden, seed=0, split_seed=0)
        paths = {"numpy_float64": lambda s, T: hypergradient(problem, D.sgd(), s, 1)}
        for dtype in ("float32", "float64"):
            tp = mnist_torch(problem, dtype=getattr(torch, dtype))
            paths[f"torch_{dtype}_cpu"] = (lambda tp: lambda s, T: schedule_hypergradient(tp, s, "sgd", 1))(tp)
        per_step = {}
        for T in args.steps:
            schedule = np.full(T, 0.01)
            for name, fn in paths.items():
                fn(schedule, T)                                   # warm-up
            for name, fn in paths.items():
                per_step.setdefault(name, {})[T] = timed(lambda: fn(schedule, T), args.repeat) / T
        for name, by_T in per_step.items():
            s512 = by_T[max(by_T)] * 512
            out["rows"].append({"network": problem.name, "path": name, "seconds_per_step": by_T,
                                "seconds_per_iteration_T512": s512,
                                "projected_hours_5000x4": s512 * 5000 * 4 / 3600})
            print(problem.name, name, {T: round(v * 512, 2) for T, v in by_T.items()}, flush=True)
    out["load_after"] = os.getloadavg()
    atomic_write_json(args.out, out)


if __name__ == "__main__":
    main()
