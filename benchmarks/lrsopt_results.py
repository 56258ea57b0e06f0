"""LRS-OPT results (MARTHE §5): f_T vs the best constant on Beale/Bukin; MNIST MLP accuracy.

Usage: ``python benchmarks/lrsopt_results.py [--quick] [--out lrsopt]`` → benchmarks/results/lrsopt.json.

* Beale and Bukin, SGD, T = 500: the best constant η on a grid (logspace(−4, 0, 17),
  diverging ones excluded) and L-BFGS-B LRS-OPT started from it and from 0.003·1_T.
* MNIST 784-32-10 (7000/700 train/validation, batch 100), SGD, T steps: the §5 PGD
  protocol from η = 0.01·1_T (fresh minibatches per outer iteration, fixed w_0), then both
  the LRS-OPT schedule and the constant 0.01 schedule trained on the same held-out
  minibatch sequences (seeds 0…4, none used by an outer iteration): validation and test
  accuracy, mean over seeds.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from common import write  # noqa: E402

from hgref import DivergenceError, dynamics as D, problems  # noqa: E402
from hgref.lrsopt import lrs_opt, lrs_opt_pgd, outer_seed  # noqa: E402
from hgref.oracle.unroll import final_objective, sweep  # noqa: E402

T_TOY = 500


def f_T(problem, dyn, schedule, seed=0):
    return final_objective(problem, sweep(problem, dyn, schedule, seed, dyn.init(problem.w0))[0], len(schedule))


def toy(problem, maxiter):
    dyn, grid, consts = D.sgd(), np.logspace(-4, 0, 17), {}
    for c in grid:
        try:
            consts[float(c)] = f_T(problem, dyn, np.full(T_TOY, c))
        except DivergenceError:
            consts[float(c)] = None
    best_c = min((v, c) for c, v in consts.items() if v is not None)[1]
    out = {"grid": consts, "best_constant": best_c, "best_constant_f": consts[best_c], "lrs_opt": {}}
    for label, start in (("from_best_constant", best_c), ("from_0.003", 0.003)):
        t0 = time.perf_counter()
        res = lrs_opt(problem, dyn, np.full(T_TOY, start), maxiter=maxiter)
        out["lrs_opt"][label] = {"f": res.fun, "nit": int(res.nit), "nfev": int(res.nfev),
                                 "message": res.message, "history": res.history,
                                 "seconds": time.perf_counter() - t0,
                                 "beats_best_constant": bool(res.fun < consts[best_c])}
        print(problem.name, label, res.fun, "best constant", consts[best_c], flush=True)
    return out


def accuracy(problem, dyn, schedule, seeds):
    rows = []
    for s in seeds:
        w = sweep(problem, dyn, schedule, s, dyn.init(problem.w0))[0].w
        m = problem.metrics(w)
        rows.append({"seed": s, "val_acc": m["val_acc"], "test_acc": m["test_acc"], "val_loss": m["val_loss"]})
    return {"per_seed": rows, "val_acc_mean": float(np.mean([r["val_acc"] for r in rows])),
            "test_acc_mean": float(np.mean([r["test_acc"] for r in rows])),
            "val_loss_mean": float(np.mean([r["val_loss"] for r in rows]))}


def mnist(steps, iterations, lr, max_change):
    from hgref.problems.mnist import mnist_mlp

    problem, dyn = mnist_mlp((32,), seed=0), D.sgd()
    t0 = time.perf_counter()
    res = lrs_opt_pgd(problem, dyn, steps=steps, lr=lr, iterations=iterations, seed=1000,
                      max_change=max_change, progress=False)
    seconds = time.perf_counter() - t0
    seeds = [s for s in range(5) if s not in {outer_seed(1000, k) for k in range(iterations)}]
    const = np.full(steps, 0.01)
    out = {"problem": problem.info, "steps": steps, "iterations": iterations, "lr": lr,
           "max_change": max_change, "status": res.status, "message": res.message,
           "history": res.history, "schedule": res.x, "seconds": seconds, "eval_seeds": seeds,
           "lrs_opt": accuracy(problem, dyn, res.x, seeds), "constant_0.01": accuracy(problem, dyn, const, seeds)}
    print("mnist", out["lrs_opt"]["val_acc_mean"], out["constant_0.01"]["val_acc_mean"], seconds, flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="lrsopt")
    args = parser.parse_args()
    q = args.quick
    payload = {"beale": toy(problems.beale(), 2 if q else 20), "bukin": toy(problems.bukin(), 2 if q else 10),
               "mnist": mnist(50 if q else 200, 3 if q else 40, lr=0.1, max_change=0.02)}
    write(os.path.splitext(os.path.basename(args.out))[0], payload)


if __name__ == "__main__":
    main()
