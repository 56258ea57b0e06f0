"""MARTHE Fig. 1 behaviour on the toy problems, and paper vs released MARTHE vs the oracle.

Usage: ``python benchmarks/toy_rules.py`` → benchmarks/results/toy_rules.json.

Part 1 (Fig. 1): plain GD, 500 steps from the default starts (hgref.problems.toy), for each
β in a logspace grid: the best objective min_t L(w_t) (NaN if the run diverged) of HD
(lop SGD, E = L), RTHO and MARTHE (adaptive μ and β; β is the β-adaptation step). Also
MARTHE with β chosen by decimation from β = 1.
Part 2 (variants): paper vs released MARTHE on Beale, Bukin and a small MNIST MLP: the
relative error and cosine of Δη_t against the oracle's discounted sum (Eq. 11 with the μ_j
used) and against the true ∂f/∂η_t = J[T, t], and the final objective.
"""
from __future__ import annotations

import numpy as np
from common import write

from hgref import dynamics as D
from hgref import problems, rules
from hgref.oracle import prefix_hypergradients
from hgref.train import run

STEPS = 500
ETA0 = {"beale": 1e-3, "bukin": 1e-2}
GRID = [10.0 ** k for k in range(-8, 1)]
MARTHE_GRID = [10.0 ** k for k in range(-12, 1)]
MAKERS = {"hd": lambda b: rules.hd(b, objective="validation"), "rtho": rules.rtho,
          "marthe": lambda b: rules.marthe(b)}


def best(tr):
    return float("nan") if tr.diverged_at is not None else float(min(tr.losses.min(), tr.objective))


def figure1():
    out = {}
    for name, problem in (("beale", problems.beale()), ("bukin", problems.bukin())):
        res = {"w0": problem.w0.tolist(), "eta0": ETA0[name], "steps": STEPS}
        for method, make in MAKERS.items():
            grid = MARTHE_GRID if method == "marthe" else GRID
            vals = [best(run(problem, D.sgd(), make(b), ETA0[name], STEPS, on_divergence="return"))
                    for b in grid]
            res[method] = {"beta": grid, "best_objective": vals, "min": float(np.nanmin(vals))}
        tr, b, tried = rules.decimate(MAKERS["marthe"], problem, D.sgd(), ETA0[name], STEPS,
                                      beta_start=1.0)
        res["marthe_decimated"] = {"beta": b, "best_objective": best(tr), "tried": tried}
        h, r = np.array(res["hd"]["best_objective"]), np.array(res["rtho"]["best_objective"])
        both = np.isfinite(h) & np.isfinite(r)
        res["rtho_below_hd_at_every_finite_beta"] = bool(np.all(r[both] < h[both]))
        res["hd_below_rtho_at_every_finite_beta"] = bool(np.all(h[both] < r[both]))
        res["marthe_min_le_better_of_two"] = res["marthe"]["min"] <= min(res["hd"]["min"], res["rtho"]["min"])
        out[name] = res
        print(name, {k: res[k]["min"] for k in MAKERS}, "decimated", res["marthe_decimated"]["best_objective"])
    return out


def _errors(tr, J):
    """Δη_t vs Eq. 11 (exact discounted sum) and vs the true ∂f/∂η_{t−1} = J[T, t−1]."""
    mus, dEta = tr.diagnostics["mu"], tr.diagnostics["hypergradient"]
    T = J.shape[1]
    ref = np.array([sum(np.prod(mus[i + 1:t]) * J[t, i] for i in range(t)) for t in range(T)])
    true = J[T, :T - 1]               # ∂f/∂η_{t−1}, the quantity Δη_t is used to estimate
    est = dEta[1:T]

    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return {"eq11_max_rel_err": float(np.max(np.abs(dEta - ref) / np.maximum(np.abs(ref), 1e-300))),
            "cos_vs_true_hypergradient": cos(est, true),
            "sign_agreement_vs_true": float(np.mean(np.sign(est) == np.sign(true))),
            "final_objective": tr.objective, "final_eta": float(tr.etas[-1])}


def variants():
    cases = {
        "beale": (problems.beale(), D.sgd(), 1e-3, 1e-11, 200),
        "bukin": (problems.bukin(), D.sgd(), 1e-2, 1e-4, 200),
        "mnist_mlp32": (problems.mnist_mlp((32,), sizes=(1000, 200, 200)), D.sgd(), 0.05, 1e-4, 60),
    }
    out = {}
    for name, (problem, dyn, eta0, beta, steps) in cases.items():
        out[name] = {}
        for variant in ("paper", "released"):
            rule = rules.marthe(beta, variant=variant, beta0=beta)
            tr = run(problem, dyn, rule, eta0, steps, on_divergence="return", metrics=False)
            if tr.diverged_at is not None:
                out[name][variant] = {"diverged_at": tr.diverged_at}
                continue
            J = prefix_hypergradients(problem, dyn, tr.etas)
            out[name][variant] = dict(_errors(tr, J), beta=beta, eta0=eta0, steps=steps)
        print(name, out[name])
    return out


if __name__ == "__main__":
    write("toy_rules", {"figure1": figure1(), "variants": variants()})
