"""MARTHE paper §5 / Fig. 2: offline (LRS-OPT) vs online learning-rate schedules on MNIST.

Setting (§5): a "three-layer" ReLU MLP, SGD with minibatches of 100 on 7000 training
images, E = cross-entropy on 700 validation images after T = 512 steps, η_0 = 0.01,
Glorot-uniform weights with zero biases. "Three-layer … 500 hidden units per layer" is
ambiguous: three weight layers (784-500-500-10, the default here and of ``--paper-scale``)
or three hidden layers (784-500-500-500-10, ``--hidden 500 500 500``, 1.5× per LRS-OPT
iteration). The paper gives no other clue (its constant-schedule accuracy, 87.5 %, is
matched within noise by both; the authors' released code has no §5 network), so the
default is an interpretation, stated in every results file (``config.hidden``).
Our images come from the MNIST test-set files (10k images; the paper drew from the 60k
training set).

Seeding (Appendix B): the seed controls w_0 and the online minibatch order; the
7000/700/2300 split is drawn once (``split_seed`` = 0) and shared by every seed, so the
spread over seeds is that of w_0 and the minibatch order only, as in the paper.

Methods: ``constant`` (η_t = η_0), ``hd`` (Eq. 6, μ = 0), ``rtho`` (Eq. 6, μ = 1),
``marthe_mu`` (Eq. 9 with a fixed μ from a grid), ``marthe_hmu`` (adaptive μ by h_μ,
Appendix A, with a fixed β: Fig. 2 right's blue line), ``marthe`` (Algorithm 1: adaptive μ
and β), and ``lrs_opt`` (the whole schedule optimised with the exact hypergradient, Eq. 4;
fresh minibatches at every outer iteration, footnote 7; :mod:`.schedules_lrsopt`). β grids
are per method (:data:`BETAS`): adaptive MARTHE's β is a hyper-hyper learning rate, so its
grid reaches 1e-9. Every run is checked by :func:`hgref.experiments.flags.divergence_flag`;
flagged runs are left out of the means and counted (``n_diverged``) per point.

Figures: LRS-OPT schedules per seed; offline vs online schedules for the first seed (each
method at its β of best mean validation accuracy); mean validation accuracy vs β with the
spread over seeds (±1 sd) and the constant/LRS-OPT levels; LRS-OPT convergence (f_T and
validation accuracy vs outer iteration).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import dynamics, rules
from ..train import run
from ._figures import mean_sd
from .flags import divergence_flag
from .runner import RunSpec, format_value, run_table, write_results
from .schedules_figure import schedules_figure

__all__ = ["Setup", "DEFAULT", "PAPER", "TINY", "METHODS", "INITS", "BETAS", "configure", "schedule_specs",
           "schedule_job", "summarize", "run_schedules"]

METHODS = ("constant", "hd", "rtho", "marthe_mu", "marthe_hmu", "marthe", "lrs_opt")
LABELS = {"constant": "constant", "hd": "HD", "rtho": "RTHO", "marthe_mu": "MARTHE fixed μ",
          "marthe_hmu": "MARTHE h_μ (fixed β)", "marthe": "MARTHE (adaptive μ, β)", "lrs_opt": "LRS-OPT"}
INITS = ("glorot", "he")          # of hgref.problems.mnist_mlp ("zeros" suits logistic regression only)
ONLINE = ("hd", "rtho", "marthe_mu", "marthe_hmu", "marthe")


class Setup(NamedTuple):
    """One configuration of the §5 experiment."""

    hidden: tuple            # hidden widths (paper: "three-layer … 500 hidden units per layer")
    steps: int               # T
    eta0: float              # η_0 (also the LRS-OPT starting schedule η_0 · 1_T)
    batch_size: int
    sizes: tuple             # (train, validation, test) images
    split_seed: int          # one split for every seed (Appendix B)
    init: str
    n_seeds: int             # default number of seeds
    seeds: tuple
    methods: tuple
    betas: dict              # method -> β grid (hd, rtho, marthe_mu, marthe_hmu, marthe)
    mus: tuple               # fixed-μ grid of marthe_mu
    lrs_opt_iterations: int
    lrs_opt_outer: str       # outer optimizer (hgref.lrsopt.OUTERS); "pgd" is the paper's
    lrs_opt_lr: float        # its step size
    lrs_opt_max_change: object  # per-entry clip of a PGD step (None: off)
    lrs_opt_restart: object  # safeguard factor (hgref.lrsopt.optimize_schedule; None: off)
    lrs_opt_eval_every: int  # validation metrics every this many outer iterations
    lrs_opt_seeds: int       # LRS-OPT runs on the first this-many seeds (paper: 4)
    device: object           # None: NumPy oracle (float64); else torch reverse mode on it
    torch_dtype: str         # "float32" (paper scale) or "float64"


_BETAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
#: β grid per online method; adaptive MARTHE's best sat on the old grid's edge (1e-6).
BETAS = {"hd": _BETAS, "rtho": _BETAS, "marthe_mu": _BETAS, "marthe_hmu": _BETAS,
         "marthe": (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)}
PAPER = Setup((500, 500), 512, 0.01, 100, (7000, 700, 2300), 0, "glorot", 20, tuple(range(20)), METHODS,
              BETAS, (0.9, 0.99, 0.999), 5000, "pgd", 0.1, None, None, 100, 4, None, "float32")
#: LRS-OPT default: PGD step 1 with a per-entry clip of 0.005 and the safeguard. Evidence
#: (benchmarks/bench_lrsopt_outer.py, 784-32-10, T = 128): it reaches the paper's PGD-5000
#: best validation loss in 260 iterations (PGD step 0.1: 2380, then a runaway); Adam and
#: log-η Adam are faster at first but end in runaways (README "Results").
DEFAULT = PAPER._replace(hidden=(50, 50), n_seeds=3, seeds=tuple(range(3)), mus=(0.9, 0.99),
                         lrs_opt_iterations=600, lrs_opt_outer="pgd", lrs_opt_lr=1.0, lrs_opt_max_change=0.005,
                         lrs_opt_restart=2.0, lrs_opt_eval_every=10, lrs_opt_seeds=2)
#: seconds-long; RTHO at β = 10 is a planted runaway run (|η| > 1e3 within 12 steps).
TINY = DEFAULT._replace(hidden=(8,), steps=12, sizes=(300, 100, 100), n_seeds=1, seeds=(0,),
                        betas={**{m: (1e-2,) for m in ONLINE}, "rtho": (1e-2, 10.0)}, mus=(0.9,),
                        lrs_opt_iterations=2, lrs_opt_eval_every=1, lrs_opt_seeds=1)


def configure(base: Setup, *, seeds=None, hidden=None, steps=None, init=None, methods=None, betas=None,
              mus=None, lrs_opt_iterations=None, lrs_opt_outer=None, lrs_opt_lr=None, lrs_opt_max_change=None,
              lrs_opt_restart=None, lrs_opt_seeds=None, device=None, torch_dtype=None) -> Setup:
    """``base`` with the given fields replaced (None keeps the base value).

    ``betas``: one grid for every online method, or a dict method -> grid (merged into the base's).
    ``lrs_opt_max_change`` / ``lrs_opt_restart``: 0 turns the clip / safeguard off.
    """
    if betas is not None:
        betas = ({**base.betas, **{m: tuple(g) for m, g in betas.items()}} if isinstance(betas, dict)
                 else {m: tuple(betas) for m in ONLINE})
    changes = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dict(
        seeds=seeds, hidden=hidden, steps=steps, init=init, methods=methods, mus=mus,
        lrs_opt_iterations=lrs_opt_iterations, lrs_opt_outer=lrs_opt_outer, lrs_opt_lr=lrs_opt_lr,
        lrs_opt_seeds=lrs_opt_seeds, device=device, torch_dtype=torch_dtype).items() if v is not None}
    if betas is not None:
        changes["betas"] = betas
    for name, value in (("lrs_opt_max_change", lrs_opt_max_change), ("lrs_opt_restart", lrs_opt_restart)):
        if value is not None:
            changes[name] = float(value) or None
    setup = base._replace(**changes)
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}; accepted values: {', '.join(INITS)}")
    from ..lrsopt import OUTERS
    if setup.lrs_opt_outer not in OUTERS:
        raise ValueError(f"unknown lrs_opt_outer {setup.lrs_opt_outer!r}; accepted values: {', '.join(OUTERS)}")
    if setup.torch_dtype not in ("float32", "float64"):
        raise ValueError(f"unknown torch_dtype {setup.torch_dtype!r}; accepted values: float32, float64")
    return setup


def problem_of(config):
    """The MNIST problem of a run config (seed: w_0 and minibatch order; one split)."""
    from ..problems import mnist_mlp
    return mnist_mlp(tuple(config["hidden"]), seed=config["seed"], batch_size=config["batch_size"],
                     init=config["init"], sizes=tuple(config["sizes"]), split_seed=config["split_seed"])


def schedule_specs(setup: Setup):
    """The run table: every (seed, method, β[, μ]) and LRS-OPT on the first seeds."""
    base = {"hidden": list(setup.hidden), "steps": setup.steps, "eta0": setup.eta0,
            "batch_size": setup.batch_size, "sizes": list(setup.sizes), "split_seed": setup.split_seed,
            "init": setup.init}
    specs = []
    if "lrs_opt" in setup.methods:  # the long runs first, so the process pool overlaps them with the rest
        for seed in setup.seeds[:setup.lrs_opt_seeds]:
            lrs = dict(base, seed=seed, method="lrs_opt", iterations=setup.lrs_opt_iterations,
                       outer=setup.lrs_opt_outer, lr=setup.lrs_opt_lr, max_change=setup.lrs_opt_max_change,
                       restart=setup.lrs_opt_restart, eval_every=setup.lrs_opt_eval_every)
            if setup.device is not None:
                lrs.update(device=setup.device, torch_dtype=setup.torch_dtype)
            specs.append(RunSpec(f"seed={seed}-lrs_opt", lrs))
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
                    for beta in setup.betas[method]:
                        add(f"marthe_mu={format_value(mu)}-beta={format_value(beta)}", method=method,
                            mu=float(mu), beta=float(beta))
            else:
                for beta in setup.betas[method]:
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
    if method == "marthe_hmu":
        return rules.marthe(beta, mu="adaptive", adapt_beta=False)
    if method == "marthe":
        return rules.marthe(beta, mu="adaptive", adapt_beta=True)
    raise ValueError(f"unknown method {method!r}; accepted values: {', '.join(METHODS)}")


def trajectory_record(tr):
    """The JSON record of a run of :func:`hgref.train.run`, with its divergence flag."""
    flag = divergence_flag(tr.etas, tr.losses, diverged_at=tr.diverged_at, what="loss, eta or weights")
    return {"diverged_at": tr.diverged_at, "flag": flag, "etas": tr.etas, "train_losses": tr.losses,
            "val_loss": tr.objective if tr.diverged_at is None else None, "metrics": tr.metrics}


def schedule_job(config, scratch=None):
    """One run: train with the method's schedule on the seed's minibatch order; metrics of w_T."""
    if config["method"] == "lrs_opt":
        from .schedules_lrsopt import lrs_opt_job
        return lrs_opt_job(config, scratch)
    tr = run(problem_of(config), dynamics.sgd(), _rule(config), config["eta0"], config["steps"],
             seed=config["seed"], on_divergence="return")
    return trajectory_record(tr)


def _group(cfg):
    """(method label key, β) of a run: fixed-μ runs are grouped per μ."""
    if cfg["method"] == "marthe_mu":
        return f"marthe_mu={cfg['mu']:g}", cfg["beta"]
    return cfg["method"], cfg.get("beta")


def _flagged(rec):
    res = rec["result"]
    return res["diverged_at"] is not None or res.get("flag") is not None


def _val_acc(rec):
    return None if _flagged(rec) else rec["result"]["metrics"].get("val_acc")


def summarize(records):
    """Per (method, β): mean ± sd validation accuracy and loss over the seeds not flagged,
    ``n_seeds``, ``n_diverged`` (flagged seeds); the best β per method (no flagged seed)."""
    table = {}
    for rec in records.values():
        group, beta = _group(rec["config"])
        table.setdefault(group, {}).setdefault("none" if beta is None else format_value(beta), []).append(rec)
    summary = {}
    for group, by_beta in table.items():
        rows = {}
        for bkey, recs in by_beta.items():
            ok = [r for r in recs if not _flagged(r)]
            mean, sd = mean_sd([_val_acc(r) for r in recs])
            loss_mean, loss_sd = mean_sd([r["result"]["metrics"].get("val_loss") for r in ok])
            rows[bkey] = {"beta": recs[0]["config"].get("beta"), "val_acc_mean": mean, "val_acc_sd": sd,
                          "val_loss_mean": loss_mean, "val_loss_sd": loss_sd,
                          "test_acc_mean": mean_sd([r["result"]["metrics"].get("test_acc") for r in ok])[0],
                          "n_seeds": len(recs), "n_diverged": len(recs) - len(ok),
                          "flags": {str(r["config"]["seed"]): r["result"].get("flag") for r in recs if _flagged(r)}}
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
    """Run (or resume) the §5 run table; write ``schedules.json``, ``schedules.<fmt>`` and
    ``schedules_convergence.<fmt>`` (LRS-OPT f_T and validation accuracy vs outer iteration)."""
    from .schedules_lrsopt import convergence_figure
    out = Path(out)
    records = run_table(out, schedule_specs(setup), schedule_job, jobs=jobs, progress=progress,
                        desc="schedules")
    summary = summarize(records)
    results = write_results(out / "schedules.json", "schedules", setup._asdict(), records, summary)
    paths = [results, *schedules_figure(records, summary, out / "schedules", formats)]
    if any(r["config"]["method"] == "lrs_opt" for r in records.values()):
        paths += convergence_figure(records, summary, out / "schedules_convergence", formats)
    return paths
