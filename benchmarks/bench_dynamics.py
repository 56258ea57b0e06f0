"""Plain step time of each dynamics (NumPy) on Beale and MNIST MLPs.

Usage: ``python benchmarks/bench_dynamics.py [--quick]`` → benchmarks/results/dynamics.json.
Reports absolute medians (seconds per step) and each dynamics relative to SGD, plus the
share of a step spent in the problem's gradient.
"""
from __future__ import annotations

import argparse

from common import ratio, timeit, write

from hgref import dynamics as D
from hgref import problems, rules
from hgref.train import run

NAMES = ("sgd", "heavy_ball", "nesterov", "adam")


def bench(problem, steps, repeat):
    out = {}
    def plain():
        return run(problem, D.sgd(), rules.constant(), 1e-4, steps, metrics=False)
    for name in NAMES:
        dyn = D.get_dynamics(name)
        r = ratio(lambda: run(problem, dyn, rules.constant(), 1e-4, steps, metrics=False), plain, repeat=repeat)
        out[name] = {"step_s": r["numerator_s"] / steps, "vs_sgd": r["ratio"]}
    w, b = problem.w0, problem.batch(0, 0)
    out["grad_only_s"] = timeit(lambda: problem.value_and_grad(w, b), repeat=repeat)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repetitions")
    args = parser.parse_args()
    steps, repeat = (5, 3) if args.quick else (20, 5)
    results = {"beale": bench(problems.beale(), 200, repeat)}
    for hidden in ((32,), (500, 500, 500)):
        p = problems.mnist_mlp(hidden=hidden, batch_size=100)
        results[p.name] = dict(bench(p, steps, repeat), dim=p.dim, batch_size=100)
    write("dynamics", {"results": results, "dtype": "float64"})
    for k, v in results.items():
        print(k, {n: round(v[n]["step_s"] * 1e3, 3) for n in NAMES}, "ms/step")


if __name__ == "__main__":
    main()
