"""Evidence for ``TOY_SETUP`` (hgref/experiments/toy.py): the start points, η_0 and Bukin's ε
of ``hgref toy``, against ¼-decade β grids and the setups they replace.

Usage: ``python benchmarks/toy_setup.py [--scan-starts]`` → benchmarks/results/toy_setup.json
(≈ 10 s; ``--scan-starts`` adds the Beale start scan, ≈ 3 min).

For every (setup, method, β): the final objective E(w_T), the best objective within the run,
whether it diverged, and the steps with η_t = 0. Summaries: the lowest final objective per
method; on Bukin, per method, the β whose final objective is on the floor √(√ε + ε) (within
0.1 %) and those whose η drops to 0 and stays there; on Beale, the RTHO β that end below
HD's lowest final objective.
"""
from __future__ import annotations

import numpy as np
from common import write

from hgref import dynamics, problems, rules
from hgref.experiments.toy import TOY_SETUP
from hgref.train import run

STEPS = 500
MAKE = {"hd": lambda b: rules.hd(b, objective="validation"), "rtho": rules.rtho,
        "marthe": lambda b: rules.marthe(b, mu="adaptive", adapt_beta=True)}


def quarter_decades(lo, hi):
    return [10.0 ** (k / 4) for k in range(4 * lo, 4 * hi + 1)]


def sweep(problem, eta0, grids, verbose=True):
    out = {}
    for method, grid in grids.items():
        rows = []
        for beta in grid:
            with np.errstate(over="ignore", invalid="ignore"):
                tr = run(problem, dynamics.sgd(), MAKE[method](beta), eta0, STEPS, on_divergence="return",
                         metrics=False)
            ok = tr.diverged_at is None
            etas = np.asarray(tr.etas)
            zero = np.nonzero(etas == 0)[0]
            rows.append({"beta": beta, "diverged_at": tr.diverged_at,
                         "final_objective": float(tr.objective) if ok else None,
                         "best_objective": float(min(tr.losses.min(), tr.objective)) if ok else None,
                         "zero_eta_steps": int(zero.size),
                         "stays_at_zero_from": int(zero[0]) if zero.size and np.all(etas[zero[0]:] == 0) else None})
        finite = [r for r in rows if r["final_objective"] is not None]
        best = min(finite, key=lambda r: r["final_objective"]) if finite else None
        out[method] = {"runs": rows, "lowest_final": best and {"beta": best["beta"], "value": best["final_objective"]},
                       "lowest_best": finite and min(r["best_objective"] for r in finite)}
        if verbose:
            print(f"  {method:6} lowest final {best['final_objective']:.4g} at β = {best['beta']:.2g}" if best
                  else f"  {method:6} every β diverged")
    return out


def scan_starts():
    """Beale starts on a 0.5-spaced grid of [−4, 4]², η_0 ∈ {1e-4, 1e-3}, decade β grids: the
    starts from which RTHO's lowest final objective is < 1e-2 while HD's stays > 0.05."""
    found = []
    for x in np.arange(-4.0, 4.01, 0.5):
        for y in np.arange(-4.0, 4.01, 0.5):
            for eta0 in (1e-4, 1e-3):
                grids = {"hd": [10.0 ** k for k in range(-9, 0)], "rtho": [10.0 ** k for k in range(-11, -2)]}
                res = sweep(problems.beale(w0=(x, y)), eta0, grids, verbose=False)
                hd, rtho = res["hd"]["lowest_final"], res["rtho"]["lowest_final"]
                if hd and rtho and rtho["value"] < 1e-2 and hd["value"] > 0.05:
                    found.append({"w0": [float(x), float(y)], "eta0": eta0, "hd": hd, "rtho": rtho})
    return found


def main(starts=False):
    b, k = TOY_SETUP["beale"], TOY_SETUP["bukin"]
    cases = {
        "beale (TOY_SETUP)": (problems.beale(w0=b["w0"]), b["eta0"],
                              {"hd": quarter_decades(-9, -4), "rtho": quarter_decades(-10, -4)}),
        "beale, old start (-1, 1.5)": (problems.beale(w0=(-1.0, 1.5)), 1e-3,
                                       {"hd": quarter_decades(-9, -4), "rtho": quarter_decades(-10, -4)}),
        "bukin (TOY_SETUP)": (problems.bukin(eps=k["eps"], w0=k["w0"]), k["eta0"],
                              {"hd": quarter_decades(-8, 0), "rtho": quarter_decades(-10, -2)}),
        "bukin, eps=1e-6, eta0=1e-3 (old)": (problems.bukin(eps=1e-6, w0=k["w0"]), 1e-3,
                                             {"hd": quarter_decades(-6, 0), "rtho": quarter_decades(-8, -2)}),
        "bukin, eps=0.01": (problems.bukin(eps=0.01, w0=k["w0"]), k["eta0"],
                            {"hd": quarter_decades(-8, 0), "rtho": quarter_decades(-10, -2)}),
    }
    results = {}
    for name, (problem, eta0, grids) in cases.items():
        print(name, "w0", problem.w0.tolist(), "eta0", eta0)
        results[name] = {"w0": problem.w0.tolist(), "eta0": eta0, "info": problem.info, **sweep(problem, eta0, grids)}
    bukin = results["bukin (TOY_SETUP)"]
    floor = float(np.sqrt(np.sqrt(k["eps"]) + k["eps"]))
    counts = {}
    for method in ("hd", "rtho"):
        runs = bukin[method]["runs"]
        counts[method] = {"betas": len(runs), "finite": sum(r["diverged_at"] is None for r in runs),
                          "final_within_0.1%_of_floor": sum(r["final_objective"] is not None
                                                            and r["final_objective"] <= 1.001 * floor for r in runs),
                          "eta_stays_at_zero": sum(r["stays_at_zero_from"] is not None for r in runs)}
        print("bukin", method, counts[method])
    results["bukin_counts"] = dict(counts, floor=floor)
    beale = results["beale (TOY_SETUP)"]
    hd_min = beale["hd"]["lowest_final"]["value"]
    results["beale_rtho_below_every_hd"] = sum(r["final_objective"] is not None and r["final_objective"] < hd_min
                                               for r in beale["rtho"]["runs"])
    print("beale: RTHO β with a final objective below HD's lowest:", results["beale_rtho_below_every_hd"],
          "of", len(beale["rtho"]["runs"]))
    if starts:
        results["beale_starts_rtho_ahead"] = scan_starts()
    write("toy_setup", results)


if __name__ == "__main__":
    import sys
    main(starts="--scan-starts" in sys.argv[1:])
