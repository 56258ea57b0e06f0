"""hgref's BLAS thread policy from the API: library calls at default threads vs one thread.

Usage: ``python benchmarks/bench_threads.py`` → benchmarks/results/threads.json.

A user's fresh interpreter has every BLAS thread (``cpu_count``); this benchmark opens the
pools to that many (even if OPENBLAS_NUM_THREADS=1 was set for the other benchmarks) and
times, interleaved (:func:`common.ratio`), a 64-step :func:`hgref.run` on 784-32-10 and a
T = 32 :func:`hgref.oracle.hypergradient`:

* ``default``: hgref's policy as shipped (``set_threads(None)``: 1 thread inside the call);
* ``unlimited``: ``set_threads("all")``, what the library did before the policy;

each against the same call inside ``blas_threads(1)``. Target: default / one thread ≤ 1.25.
"""
from __future__ import annotations

import os

import numpy as np
from common import ratio, write
from threadpoolctl import threadpool_limits

from hgref import dynamics as D
from hgref import problems, rules
from hgref._threads import blas_threads, set_threads
from hgref.oracle import hypergradient
from hgref.train import run


def collect(quick=False):
    """Ratios (call at a thread setting) / (call at one thread); the payload of threads.json."""
    repeat = 7
    problem, dyn = problems.mnist_mlp((32,)), D.sgd()
    calls = {"run_64_steps": lambda: run(problem, dyn, rules.constant(), 0.1, 64, metrics=False),
             "hypergradient_T32": lambda: hypergradient(problem, dyn, np.full(32, 0.1))}
    n = os.cpu_count() or 1
    out = {"blas_threads_available": n, "problem": problem.name, "ratios": {}}

    def at(setting, fn):
        def call():
            previous = set_threads(setting)
            try:
                return fn()
            finally:
                set_threads(previous)
        return call

    def one_thread(fn):
        def call():
            with blas_threads(1):
                return at("all", fn)()
        return call

    with threadpool_limits(limits=n, user_api="blas"):      # as in a fresh interpreter
        for name, fn in calls.items():
            for setting, label in ((None, "default"), ("all", "unlimited")):
                r = ratio(at(setting, fn), one_thread(fn), repeat=repeat)
                out["ratios"][f"{name}/{label}"] = r
                print("threads", name, label, f"{r['ratio']:.2f}", flush=True)
    return out


def main():
    write("threads", collect())


if __name__ == "__main__":
    main()
