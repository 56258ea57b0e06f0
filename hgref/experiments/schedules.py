"""MARTHE paper §5 / Fig. 2: offline (LRS-OPT) vs online learning-rate schedules on MNIST.

Setting (§5): a "three-layer" ReLU MLP (read as three weight layers, 784-h-h-10), SGD with
minibatches of 100 on 7000 training images, E = cross-entropy on 700 validation images
after T = 512 steps, η_0 = 0.01, Glorot-uniform weights with zero biases. Our images
come from the MNIST test-set files (10k images; the paper drew from the 60k training set).

Methods: ``constant`` (η_t = η_0), ``hd`` (Eq. 6, μ = 0), ``rtho`` (Eq. 6, μ = 1),
``marthe_mu`` (Eq. 9 with a fixed μ from a grid), ``marthe`` (Algorithm 1: adaptive μ
and β), and ``lrs_opt`` (projected gradient descent on the whole schedule with the exact
hypergradient, Eq. 4; fresh minibatches at every outer iteration, footnote 7). Every run
of a seed shares the initial weights and the online minibatch order of that seed.

Figures: LRS-OPT schedules per seed; offline vs online schedules for the first seed (each
method at its β of best mean validation accuracy); mean validation accuracy vs β with the
spread over seeds (±1 sd) and the constant/LRS-OPT levels.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import dynamics, rules
from ..train import run
from ._figures import mean_sd
from .runner import RunSpec, format_value, run_table, write_results
from .schedules_figure import schedules_figure

__all__ = ["Setup", "DEFAULT", "PAPER", "TINY", "METHODS", "INITS", "configure", "schedule_specs",
           "schedule_job", "summarize", "run_schedules"]

METHODS = ("constant", "hd", "rtho", "marthe_mu", "marthe", "lrs_opt")
LABELS = {"constant": "constant", "hd": "HD", "rtho": "RTHO", "marthe_mu": "MARTHE fixed μ",
          "marthe": "MARTHE (adaptive μ, β)", "lrs_opt": "LRS-OPT"}
INITS = ("glorot", "he")          # of hgref.problems.mnist_mlp ("zeros" suits logistic regression only)


class Setup(NamedTuple):
    """One configuration of the §5 experiment."""

    hidden: tuple            # hidden widths (paper: 500, 500)
    steps: int               # T
    eta0: float              # η_0 (also the LRS-OPT starting schedule η_0 · 1_T)
    batch_size: int
    sizes: tuple             # (train, validation, test) images
    init: str
    n_seeds: int             # default number of seeds
    seeds: tuple
    methods: tuple
    betas: tuple             # β grid of hd, rtho, marthe_mu, marthe
    mus: tuple               # fixed-μ grid of marthe_mu
    lrs_opt_iterations: int
    lrs_opt_lr: float        # PGD step size on the schedule
    lrs_opt_seeds: int       # LRS-OPT runs on the first this-many seeds (paper: 4)


_BETAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
PAPER = Setup((500, 500), 512, 0.01, 100, (7000, 700, 2300), "glorot", 20, tuple(range(20)), METHODS,
              _BETAS, (0.9, 0.99, 0.999), 5000, 0.1, 4)
DEFAULT = PAPER._replace(hidden=(50, 50), n_seeds=3, seeds=tuple(range(3)), mus=(0.9, 0.99),
                         lrs_opt_iterations=60, lrs_opt_seeds=2)
TINY = DEFAULT._replace(hidden=(8,), steps=12, sizes=(300, 100, 100), n_seeds=1, seeds=(0,),
                        betas=(1e-2,), mus=(0.9,), lrs_opt_iterations=2, lrs_opt_seeds=1)


def configure(base: Setup, *, seeds=None, hidden=None, steps=None, init=None, methods=None, betas=None,
              mus=None, lrs_opt_iterations=None, lrs_opt_lr=None, lrs_opt_seeds=None) -> Setup:
    """``base`` with the given fields replaced (None keeps the base value)."""
    changes = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dict(
        seeds=seeds, hidden=hidden, steps=steps, init=init, methods=methods, betas=betas, mus=mus,
        lrs_opt_iterations=lrs_opt_iterations, lrs_opt_lr=lrs_opt_lr, lrs_opt_seeds=lrs_opt_seeds).items()
        if v is not None}
    setup = base._replace(**changes)
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}; accepted values: {', '.join(INITS)}")
    return setup


def _problem(config):
    from ..problems import mnist_mlp
    return mnist_mlp(tuple(config["hidden"]), seed=config["seed"], batch_size=config["batch_size"],
                     init=config["init"], sizes=tuple(config["sizes"]))


def schedule_specs(setup: Setup):
    """The run table: every (seed, method, β[, μ]) and LRS-OPT on the first seeds."""
    base = {"hidden": list(setup.hidden), "steps": setup.steps, "eta0": setup.eta0,
            "batch_size": setup.batch_size, "sizes": list(setup.sizes), "init": setup.init}
    specs = []
    if "lrs_opt" in setup.methods:  # the long runs first, so the process pool overlaps them with the rest
        for seed in setup.seeds[:setup.lrs_opt_seeds]:
            specs.append(RunSpec(f"seed={seed}-lrs_opt", dict(base, seed=seed, method="lrs_opt",
                                                              iterations=setup.lrs_opt_iterations,
                                                              lr=setup.lrs_opt_lr)))
    for seed in setup.seeds:
        def add(key, **cfg):
            specs.append(RunSpec(f"seed={seed}-{key}", dict(base, seed=seed, **cfg)))
        for method in setup.methods:
            if method == "constant":
                add("constant", method="constant")
            elif method == "lrs_opt":
                continue
            elif method == "marthe_mu":
                for mu in setup.mus:
                    for beta in setup.betas:
                        add(f"marthe_mu={format_value(mu)}-beta={format_value(beta)}", method=method,
                            mu=float(mu), beta=float(beta))
            else:
                for beta in setup.betas:
                    add(f"{method}-beta={format_value(beta)}", method=method, beta=float(beta))
    return specs


def _rule(config):
    method, beta = config["method"], config.get("beta")
    if method == "constant":
        return rules.constant()
    if method == "hd":
        return rules.hd(beta, lop="sgd", objective="validation")
    if method == "rtho":
        return rules.rtho(beta)
    if method == "marthe_mu":
        return rules.marthe(beta, mu=config["mu"], adapt_beta=False)
    if method == "marthe":
        return rules.marthe(beta, mu="adaptive", adapt_beta=True)
    raise ValueError(f"unknown method {method!r}; accepted values: {', '.join(METHODS)}")


def _trajectory_record(tr):
    return {"diverged_at": tr.diverged_at, "etas": tr.etas, "train_losses": tr.losses,
            "val_loss": tr.objective if tr.diverged_at is None else None,
            "metrics": tr.metrics}


def schedule_job(config, scratch=None):
    """One run: train with the method's schedule on the seed's minibatch order; metrics of w_T."""
    problem = _problem(config)
    dyn = dynamics.sgd()
    if config["method"] == "lrs_opt":
        from ..lrsopt import lrs_opt_pgd
        state_path = None
        if scratch is not None:
            Path(scratch).mkdir(parents=True, exist_ok=True)
            state_path = Path(scratch) / "lrs_opt_state.json"
        res = lrs_opt_pgd(problem, dyn, np.full(config["steps"], config["eta0"]), lr=config["lr"],
                          iterations=config["iterations"], seed=config["seed"], fresh_batches=True,
                          state_path=state_path)
        schedule = np.asarray(res.x, dtype=float)
        tr = run(problem, dyn, rules.schedule("lrs_opt", lambda t: float(schedule[t])), 1.0,
                 config["steps"], seed=config["seed"], on_divergence="return")
        history = res.get("history", res.get("fun_history"))
        return dict(_trajectory_record(tr), lrs_opt_objective=res.fun, lrs_opt_history=history)
    tr = run(problem, dyn, _rule(config), config["eta0"], config["steps"], seed=config["seed"],
             on_divergence="return")
    return _trajectory_record(tr)


def _group(cfg):
    """(method label key, β) of a run: fixed-μ runs are grouped per μ."""
    if cfg["method"] == "marthe_mu":
        return f"marthe_mu={cfg['mu']:g}", cfg["beta"]
    return cfg["method"], cfg.get("beta")


def _val_acc(rec):
    res = rec["result"]
    return None if res["diverged_at"] is not None else res["metrics"].get("val_acc")


def summarize(records):
    """Mean ± sd validation accuracy over seeds per (method, β); the best β per method."""
    table = {}
    for rec in records.values():
        group, beta = _group(rec["config"])
        table.setdefault(group, {}).setdefault("none" if beta is None else format_value(beta), []).append(rec)
    summary = {}
    for group, by_beta in table.items():
        rows = {}
        for bkey, recs in by_beta.items():
            accs = [_val_acc(r) for r in recs]
            mean, sd = mean_sd(accs)
            rows[bkey] = {"beta": recs[0]["config"].get("beta"), "val_acc_mean": mean, "val_acc_sd": sd,
                          "test_acc_mean": mean_sd([r["result"]["metrics"].get("test_acc") for r in recs])[0],
                          "n_seeds": len(recs), "n_diverged": sum(a is None for a in accs)}
        ok = {k: r for k, r in rows.items() if r["n_diverged"] == 0 and np.isfinite(r["val_acc_mean"])}
        best = max(ok, key=lambda k: ok[k]["val_acc_mean"]) if ok else None
        summary[group] = {"by_beta": rows, "best_beta": best}
    families = {}
    for group, entry in summary.items():
        if entry["best_beta"] is None:
            continue
        family = group.split("=")[0]
        row = entry["by_beta"][entry["best_beta"]]
        current = families.get(family)
        if current is None or row["val_acc_mean"] > current["val_acc_mean"]:
            families[family] = dict(row, group=group, beta_key=entry["best_beta"])
    return {"groups": summary, "best": families}


def run_schedules(out, setup: Setup = DEFAULT, *, formats=("png",), jobs=1, progress=True):
    """Run (or resume) the §5 run table; write ``schedules.json`` and ``schedules.<fmt>``."""
    out = Path(out)
    records = run_table(out, schedule_specs(setup), schedule_job, jobs=jobs, progress=progress,
                        desc="schedules")
    summary = summarize(records)
    results = write_results(out / "schedules.json", "schedules", setup._asdict(), records, summary)
    return [results, *schedules_figure(records, summary, out / "schedules", formats)]
