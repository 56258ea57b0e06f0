"""MARTHE paper Fig. 1: HD, RTHO and MARTHE on Beale and smoothed Bukin N.6 (``hgref toy``).

For each problem, 500 steps of gradient descent (``dynamics.sgd``) from the fixed start
points ``problems.BEALE_W0`` / ``BUKIN_W0``, E = L, with η_t chosen online by HD
(Eq. 6, μ = 0), RTHO (Eq. 6, μ = 1) and MARTHE (Algorithm 1, adaptive μ and β) for every
hyper-learning rate β of a grid. The figure shows (left) the contours with the trajectory
of each method at its best non-diverging β, (centre) the best objective reached within
the run against β, diverged β marked with ×, (right) the learning-rate schedules η_t.
``--lrs-opt`` adds the offline LRS-OPT schedule (L-BFGS-B on Eq. 4, :mod:`hgref.lrsopt`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import dynamics, problems, rules
from ..train import run
from ._figures import pyplot
from .runner import RunSpec, format_value, run_table, write_results

__all__ = ["TOY_SETUP", "TOY_VIEWS", "METHODS", "toy_specs", "toy_job", "best_runs", "toy_figure",
           "run_toy"]

METHODS = ("hd", "rtho", "marthe")
LABELS = {"hd": "HD", "rtho": "RTHO", "marthe": "MARTHE", "lrs_opt": "LRS-OPT"}

#: Per problem: η_0 and the β grid of each method (log-spaced; the largest values diverge).
TOY_SETUP = {
    "beale": {"eta0": 1e-3, "betas": {"hd": np.logspace(-8, -2, 7).tolist(),
                                       "rtho": np.logspace(-9, -3, 7).tolist(),
                                       "marthe": np.logspace(-16, -10, 7).tolist()}},
    "bukin": {"eta0": 1e-3, "betas": {"hd": np.logspace(-6, 0, 7).tolist(),
                                       "rtho": np.logspace(-8, -2, 7).tolist(),
                                       "marthe": np.logspace(-10, -4, 7).tolist()}},
}
#: Plot windows (x limits, y limits) per problem.
TOY_VIEWS = {"beale": ((-4.5, 4.5), (-4.5, 4.5)), "bukin": ((-15.0, 5.0), (-3.0, 3.0))}
_PROBLEMS = {"beale": problems.beale, "bukin": problems.bukin}


def _make_rule(method, beta):
    if method == "hd":
        return rules.hd(beta, lop="sgd", objective="validation")
    if method == "rtho":
        return rules.rtho(beta)
    if method == "marthe":
        return rules.marthe(beta, mu="adaptive", adapt_beta=True)
    raise ValueError(f"unknown method {method!r}; accepted values: {', '.join(METHODS)}")


def toy_specs(steps=500, problem_names=("beale", "bukin"), methods=METHODS, lrs_opt=False,
              lrs_opt_maxiter=100, setup=None, seed=0):
    """The run table: one run per (problem, method, β), plus one LRS-OPT run per problem."""
    setup = setup or TOY_SETUP
    specs = []
    for name in problem_names:
        eta0 = setup[name]["eta0"]
        for method in methods:
            for beta in setup[name]["betas"][method]:
                specs.append(RunSpec(f"{name}-{method}-beta={format_value(beta)}",
                                     {"problem": name, "method": method, "beta": float(beta),
                                      "eta0": eta0, "steps": steps, "seed": seed}))
        if lrs_opt:
            specs.append(RunSpec(f"{name}-lrs_opt", {"problem": name, "method": "lrs_opt", "eta0": eta0,
                                                     "steps": steps, "maxiter": lrs_opt_maxiter, "seed": seed}))
    return specs


def _record(problem, trajectory, path, extra=None):
    finite = trajectory.losses[np.isfinite(trajectory.losses)]
    reached = list(finite) + ([trajectory.objective] if trajectory.diverged_at is None else [])
    return dict(extra or {}, best_objective=float(min(reached)) if reached else None,
                final_objective=trajectory.objective if trajectory.diverged_at is None else None,
                diverged_at=trajectory.diverged_at, etas=trajectory.etas,
                path=np.array(path), w0=problem.w0)


def toy_job(config, scratch=None):
    """One run: GD on the problem with the method's online rule (or the LRS-OPT schedule)."""
    problem = _PROBLEMS[config["problem"]]()
    dyn = dynamics.sgd()
    path = [problem.w0]

    def keep(t, state, eta, info):
        path.append(state.w)

    if config["method"] == "lrs_opt":
        from ..lrsopt import lrs_opt
        schedule0 = np.full(config["steps"], config["eta0"])
        res = lrs_opt(problem, dyn, schedule0, seed=config["seed"], maxiter=config["maxiter"])
        schedule = np.asarray(res.x, dtype=float)
        rule = rules.schedule("lrs_opt", lambda t: float(schedule[t]))
        tr = run(problem, dyn, rule, 1.0, config["steps"], seed=config["seed"], on_divergence="return",
                 callback=keep)
        return _record(problem, tr, path, {"lrs_opt_objective": float(res.fun), "lrs_opt_nit": int(res.nit)})
    rule = _make_rule(config["method"], config["beta"])
    tr = run(problem, dyn, rule, config["eta0"], config["steps"], seed=config["seed"], on_divergence="return",
             callback=keep)
    return _record(problem, tr, path)


def best_runs(records):
    """``{(problem, method): key}`` of the best non-diverged run (lowest best objective)."""
    best = {}
    for key, rec in records.items():
        cfg, res = rec["config"], rec["result"]
        if res["diverged_at"] is not None or res["best_objective"] is None:
            continue
        ident = (cfg["problem"], cfg["method"])
        if ident not in best or res["best_objective"] < records[best[ident]]["result"]["best_objective"]:
            best[ident] = key
    return best


def summarize(records):
    """Per problem and method: best β, best objective, and the diverged β."""
    best = best_runs(records)
    summary = {}
    for key, rec in records.items():
        cfg = rec["config"]
        entry = summary.setdefault(cfg["problem"], {}).setdefault(
            cfg["method"], {"best_beta": None, "best_objective": None, "diverged_betas": []})
        if rec["result"]["diverged_at"] is not None and "beta" in cfg:
            entry["diverged_betas"].append(cfg["beta"])
        if best.get((cfg["problem"], cfg["method"])) == key:
            entry["best_beta"] = cfg.get("beta")
            entry["best_objective"] = rec["result"]["best_objective"]
    return summary


def toy_figure(records, path, formats=("png",)):
    """Fig. 1: contours and trajectories | best objective vs β | schedules, one row per problem."""
    from ..plotting import color, contour, save
    plt = pyplot()
    names = list(dict.fromkeys(rec["config"]["problem"] for rec in records.values()))
    best = best_runs(records)
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 4.3 * len(names)), squeeze=False)
    order = METHODS + ("lrs_opt",)
    for row, name in zip(axes, names):
        ax_c, ax_b, ax_s = row
        contour(ax_c, _PROBLEMS[name]().objective, *TOY_VIEWS[name])
        mine = {k: r for k, r in records.items() if r["config"]["problem"] == name}
        for i, method in enumerate(order):
            runs = [r for r in mine.values() if r["config"]["method"] == method]
            if not runs:
                continue
            key = best.get((name, method))
            if key is not None:
                res, cfg = records[key]["result"], records[key]["config"]
                label = LABELS[method] + (f" (β = {cfg['beta']:.0e})" if "beta" in cfg else "")
                p = np.array(res["path"])
                ax_c.plot(p[:, 0], p[:, 1], "-", color=color(i), lw=1.6, label=label)
                ax_s.plot(np.arange(len(res["etas"])), res["etas"], color=color(i), lw=1.4, label=label)
            if method == "lrs_opt":
                continue
            runs.sort(key=lambda r: r["config"]["beta"])
            ok = [r for r in runs if r["result"]["diverged_at"] is None]
            bad = [r for r in runs if r["result"]["diverged_at"] is not None]
            ax_b.plot([r["config"]["beta"] for r in ok], [r["result"]["best_objective"] for r in ok],
                      "o-", color=color(i), label=LABELS[method])
            if bad:
                ax_b.plot([r["config"]["beta"] for r in bad], [1.0] * len(bad), "x", color=color(i), ms=9,
                          transform=ax_b.get_xaxis_transform(), clip_on=False,
                          label=f"{LABELS[method]} diverged")
        w0 = np.array(next(iter(mine.values()))["result"]["w0"])
        ax_c.plot(*w0, "ko", label="start")
        ax_c.set(title=f"{name}: trajectories at the best β", xlabel="x", ylabel="y")
        ax_c.legend(fontsize=8, loc="lower left")
        ax_b.set(xscale="log", yscale="log", xlabel="hyper-learning rate β",
                 ylabel="best objective in the run", title=f"{name}: best objective vs β (× = diverged)")
        ax_b.legend(fontsize=8)
        ax_s.set(yscale="log", xlabel="step t", ylabel="learning rate η_t", title=f"{name}: schedules")
        ax_s.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, formats)


def run_toy(out, *, seed=0, steps=500, problem_names=("beale", "bukin"), methods=METHODS, lrs_opt=False,
            lrs_opt_maxiter=100, formats=("png",), jobs=1, progress=True):
    """Run (or resume) the Fig. 1 run table; write ``toy.json`` and the figure ``toy.<fmt>``."""
    out = Path(out)
    specs = toy_specs(steps, problem_names, methods, lrs_opt, lrs_opt_maxiter, seed=seed)
    records = run_table(out, specs, toy_job, jobs=jobs, progress=progress, desc="toy")
    config = {"seed": seed, "steps": steps, "problems": list(problem_names), "methods": list(methods),
              "lrs_opt": lrs_opt, "lrs_opt_maxiter": lrs_opt_maxiter, "dynamics": "sgd",
              "setup": {n: TOY_SETUP[n] for n in problem_names}}
    results = write_results(out / "toy.json", "toy", config, records, summarize(records))
    return [results, *toy_figure(records, out / "toy", formats)]
