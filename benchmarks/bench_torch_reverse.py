"""Torch reverse-mode LRS-OPT hypergradient against plain torch SGD over the same T steps.

Usage: ``python benchmarks/bench_torch_reverse.py [--quick]`` → benchmarks/results/torch_reverse.json.

Numerator: :func:`hgref.torch.schedule_hypergradient` (SGD, η = 0.1) on the MARTHE §5
MNIST MLP with one :class:`hgref.torch.Workspace` for all repetitions, as
:func:`hgref.torch.lrs_opt` keeps one for all outer iterations (without it each call touches
its T·2n stored numbers anew: on a KVM guest the first touch of fresh memory, not the
arithmetic, then decides the ratio; see :mod:`hgref.torch._store`); denominator:
``torch.optim.SGD`` training the same :class:`hgref.torch.models.MLP` for the same T
minibatches (zero_grad, forward, backward, step). Interleaved medians of 3
(:func:`common.ratio`), one torch thread (as bench_torch). Target (issue 19): ≈ 4×, ≤ 5 at
T = 128 and 512 on 784-500-500-10, flat in T and width, float32 and float64.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from common import ratio, write
from torch.nn import functional as F

from hgref.problems import mnist_mlp
from hgref.torch import Workspace, schedule_hypergradient
from hgref.torch.mnist import mnist_torch

CASES_QUICK = (((500, 500), "float32", 32), ((500, 500), "float32", 128), ((500, 500), "float32", 512),
               ((500, 500), "float64", 128), ((200, 200), "float32", 128))
CASES = CASES_QUICK + (((500, 500), "float64", 512), ((200, 200), "float32", 512))


def case(hidden, dtype, T, repeat=3):
    tp = mnist_torch(mnist_mlp(hidden), dtype=getattr(torch, dtype))
    schedule = np.full(T, 0.1)

    def plain():
        model = tp.model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for t in range(T):
            X, y = tp.batch(t, 0)
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()

    workspace = Workspace()

    def reverse():
        schedule_hypergradient(tp, schedule, "sgd", seed=0, workspace=workspace)

    r = ratio(reverse, plain, repeat=repeat)
    out = dict(r, network="784-" + "-".join(map(str, hidden)) + "-10", dtype=dtype, T=T)
    print("torch reverse", out["network"], dtype, T, f"{r['ratio']:.2f}", flush=True)
    return out


def collect(quick=False, threads=1):
    """Ratios reverse / plain for each case; the payload of torch_reverse.json."""
    torch.set_num_threads(threads)
    return {"threads": threads, "torch": torch.__version__, "target_max": 5.0,
            "rows": [case(*c) for c in (CASES_QUICK if quick else CASES)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    args = parser.parse_args()
    write("torch_reverse", collect(args.quick))


if __name__ == "__main__":
    main()
