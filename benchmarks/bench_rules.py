"""Per-step cost of the online rules relative to a plain step (constant η), per dynamics.

Usage: ``python benchmarks/bench_rules.py [--quick]`` → benchmarks/results/rules.json.

Problem: the MARTHE §5 MLP 784-500-500-500-10 on MNIST, minibatch 100. Two objectives:
``E=L``: the rule's objective is the training minibatch loss (``objective="train"``; the
gradient comes from the same forward-over-reverse pass as A_t Z_t); ``E=val100``: ∇E on a
validation set of 100 examples (the same size as a minibatch; ``mnist_mlp(sizes=(7000,
100, 2300))``), one extra gradient pass per step. Targets (issue 5): HD ≤ 1.05×,
MARTHE/RTHO ≤ 3× (E = L), ≤ 4× (E on a validation minibatch).
"""
from __future__ import annotations

import argparse

from common import ratio, write

from hgref import dynamics as D
from hgref import problems, rules
from hgref.train import run

#: β = 0 keeps η at η_0: the cost per step does not depend on β, and Adam's Δη on this MLP
#: is large enough early on (≈1e5) that any adaptive β diverges within 10 steps.
RULES = {
    "hd": lambda obj: rules.hd(0.0, objective=obj),
    "rtho": lambda obj: rules.rtho(0.0, objective=obj),
    "marthe_mu0.9": lambda obj: rules.marthe(0.0, 0.9, adapt_beta=False, objective=obj),
    "marthe_adaptive": lambda obj: rules.marthe(0.0, objective=obj),
}


def collect(dynamics_names=("sgd", "heavy_ball", "nesterov", "adam"), quick=False):
    """Rule/plain step-time ratios per dynamics on the §5 MLP; the payload of rules.json."""
    steps, repeat = (3, 2) if quick else (8, 5)
    problem = problems.mnist_mlp((500, 500, 500), batch_size=100, sizes=(7000, 100, 2300))
    results = {"problem": problem.info, "steps_per_timing": steps, "repeat": repeat, "ratios": {}}
    for dname in dynamics_names:
        dyn = D.get_dynamics(dname)
        eta0 = 1e-4 if dname == "adam" else 1e-2

        def plain():
            return run(problem, dyn, rules.constant(), eta0, steps, metrics=False)
        out = {}
        for rname, make in RULES.items():
            for obj, label in (("train", "E=L"), ("validation", "E=val100")):
                r = ratio(lambda: run(problem, dyn, make(obj), eta0, steps, metrics=False), plain,
                          repeat=repeat)
                out[f"{rname}/{label}"] = {"ratio": r["ratio"], "step_s": r["numerator_s"] / steps,
                                           "plain_step_s": r["denominator_s"] / steps}
                print(dname, rname, label, round(r["ratio"], 3), flush=True)
        results["ratios"][dname] = out
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repetitions")
    parser.add_argument("--dynamics", nargs="+", default=["sgd", "heavy_ball", "nesterov", "adam"])
    parser.add_argument("--out", default="rules", help="results/<out>.json")
    args = parser.parse_args()
    write(args.out, collect(args.dynamics, args.quick))


if __name__ == "__main__":
    main()
