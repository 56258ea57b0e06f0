"""HD with momentum/Adam as learning-rate optimizers (seed paper) and the HD reproducibility report.

Model optimizer ``op`` ∈ {sgd, sgdn, adam} (SGDN: :func:`hgref.dynamics.nesterov`; the
CLI also accepts the old spelling ``nesterov``) × learning-rate
optimizer ``lop`` ∈ {none, sgd, sgdn, adam} (:func:`hgref.rules.hd`; ``none`` = constant
α), on logistic regression and a ReLU MLP on MNIST (7000 training / 700 validation images
from the test-set files), minibatches of 128, objective of the hypergradient = training
loss (Baydin et al.). Settings from the seed paper §3: α_0 = 1e-3; β = 1e-3 for the SGD
and SGDN model optimizers and 1e-7 for Adam, whatever the lop (the paper gives β per model
optimizer; for combinations it does not list, e.g. SGD_op-Adam_lop, we keep the model
optimizer's β); Nesterov μ = 0.9; Adam (0.9, 0.999, 1e-8).

Outputs: loss/validation-loss/α curves at α_0 = 1e-3; the α_0-insensitivity table (§4):
iterations until the training loss, averaged over the last epoch of minibatches, falls
below the threshold of the model optimizer (0.75 SGD, 0.3 SGDN, 0.2 Adam) for α_0 ∈
{1e-2, 5e-3, 1e-3, 5e-4, 1e-4}; and the β × α_0 heatmap of the reproducibility report
(Fig. 4: SGD-HD on logistic regression, final full training loss).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import dynamics, rules
from ..train import run
from ._figures import mean_sd
from .hd_figures import hd_figures
from .runner import RunSpec, format_value, run_table, write_results

__all__ = ["Setup", "DEFAULT", "PAPER", "TINY", "MODELS", "OPS", "LOPS", "configure", "hd_specs", "hd_job",
           "iterations_to_threshold", "summarize", "run_hd"]

MODELS = ("logreg", "mlp")
OPS = ("sgd", "sgdn", "adam")
OP_ALIASES = {"nesterov": "sgdn"}          # old spelling, accepted by the CLI
OP_DYNAMICS = {"sgd": "sgd", "sgdn": "nesterov", "adam": "adam"}
LOPS = ("none", "sgd", "sgdn", "adam")
OP_LABELS = {"sgd": "SGD", "sgdn": "SGDN", "adam": "Adam"}
LOP_LABELS = {"none": "constant α", "sgd": "SGD", "sgdn": "SGDN", "adam": "Adam"}
#: β per model optimizer (seed paper §3; reproducibility report §2.2).
BETA = {"sgd": 1e-3, "sgdn": 1e-3, "adam": 1e-7}
#: Loss thresholds per model optimizer (seed paper §4).
THRESHOLD = {"sgd": 0.75, "sgdn": 0.3, "adam": 0.2}


class Setup(NamedTuple):
    """One configuration of the HD experiments."""

    models: tuple
    mlp_hidden: tuple         # paper: (1000, 1000)
    epochs: dict              # model -> epochs (paper: logreg 20, mlp 100)
    batch_size: int
    sizes: tuple              # (train, validation, test)
    seeds: tuple
    ops: tuple
    lops: tuple
    alpha0: float             # α_0 of the curves
    alpha0s: tuple            # α_0 of the insensitivity table
    grid: bool                # the β × α_0 heatmap (logreg, SGD-HD)
    grid_betas: tuple
    grid_alpha0s: tuple


_ALPHA0S = (1e-2, 5e-3, 1e-3, 5e-4, 1e-4)
PAPER = Setup(MODELS, (1000, 1000), {"logreg": 20, "mlp": 100}, 128, (7000, 700, 2300), (0,), OPS, LOPS,
              1e-3, _ALPHA0S, True, (1e-6, 1e-5, 1e-4, 1e-3, 1e-2), (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6))
DEFAULT = PAPER._replace(mlp_hidden=(100, 100), epochs={"logreg": 20, "mlp": 20})
TINY = DEFAULT._replace(mlp_hidden=(8,), epochs={"logreg": 1, "mlp": 1}, sizes=(256, 100, 100),
                        alpha0s=(1e-2, 1e-3), grid_betas=(1e-4, 1e-2), grid_alpha0s=(1e-2, 1e-3))


def configure(base: Setup, *, seeds=None, models=None, ops=None, lops=None, epochs=None, alpha0s=None,
              grid=None) -> Setup:
    """``base`` with the given fields replaced (None keeps the base value); ``epochs`` sets both models."""
    changes = {k: tuple(v) for k, v in dict(seeds=seeds, models=models, ops=ops, lops=lops,
                                             alpha0s=alpha0s).items() if v is not None}
    if epochs is not None:
        changes["epochs"] = {m: int(epochs) for m in MODELS}
    if grid is not None:
        changes["grid"] = bool(grid)
    return base._replace(**changes)


def _steps(setup, model):
    return setup.epochs[model] * math.ceil(setup.sizes[0] / setup.batch_size)


def hd_specs(setup: Setup):
    """The run table: model × op × lop × α_0 (table and curves) × seed, plus the heatmap grid."""
    specs = {}
    for seed in setup.seeds:
        base = {"batch_size": setup.batch_size, "sizes": list(setup.sizes), "seed": seed}
        for model in setup.models:
            extra = {"hidden": list(setup.mlp_hidden) if model == "mlp" else [],
                     "steps": _steps(setup, model)}
            for op in setup.ops:
                for lop in setup.lops:
                    beta = None if lop == "none" else BETA[op]
                    for alpha0 in dict.fromkeys(setup.alpha0s + (setup.alpha0,)):
                        key = f"seed={seed}-{model}-{op}-{lop}-alpha0={format_value(alpha0)}"
                        specs[key] = dict(base, **extra, model=model, op=op, lop=lop, beta=beta, alpha0=alpha0)
        if setup.grid:
            for beta in setup.grid_betas:
                for alpha0 in setup.grid_alpha0s:
                    key = f"seed={seed}-logreg-sgd-sgd-alpha0={format_value(alpha0)}-beta={format_value(beta)}"
                    config = dict(base, hidden=[], steps=_steps(setup, "logreg"), model="logreg", op="sgd",
                                  lop="sgd", beta=beta, alpha0=alpha0)
                    if config not in specs.values():  # already in the table
                        specs[key] = config
    return [RunSpec(k, c) for k, c in specs.items()]


def _problem(config):
    from ..problems import mnist_logreg, mnist_mlp
    kw = dict(seed=config["seed"], batch_size=config["batch_size"], sizes=tuple(config["sizes"]))
    return mnist_mlp(tuple(config["hidden"]), **kw) if config["hidden"] else mnist_logreg(**kw)


def hd_job(config, scratch=None):
    """One run: the minibatch losses, α_t, validation losses once per epoch, final metrics."""
    problem = _problem(config)
    dyn = dynamics.get_dynamics(OP_DYNAMICS[config["op"]])
    rule = rules.constant() if config["lop"] == "none" else rules.hd(config["beta"], lop=config["lop"])
    per_epoch = math.ceil(config["sizes"][0] / config["batch_size"])
    tr = run(problem, dyn, rule, config["alpha0"], config["steps"], seed=config["seed"],
             eval_every=per_epoch, on_divergence="return")
    return {"diverged_at": tr.diverged_at, "train_losses": tr.losses, "alphas": tr.etas,
            "eval_steps": tr.eval_steps, "val_losses": tr.objectives, "metrics": tr.metrics,
            "steps_per_epoch": per_epoch}


def smoothed(losses, window):
    """Mean of the last ``window`` minibatch losses at every step (shorter at the start)."""
    losses = np.asarray(losses, dtype=float)
    if losses.size == 0:
        return losses
    c = np.cumsum(np.insert(losses, 0, 0.0))
    idx = np.arange(1, losses.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def iterations_to_threshold(losses, threshold, window):
    """First iteration (1-based count) at which the smoothed loss is below ``threshold``; None if never.

    Only full windows count (from iteration ``window`` on), so one lucky minibatch cannot end it.
    """
    s = smoothed(losses, window)
    hit = np.nonzero(s[window - 1:] < threshold)[0] if s.size >= window else []
    return int(hit[0] + window) if len(hit) else None


def summarize(records, setup: Setup):
    """Insensitivity table, final losses per (model, op, lop, α_0) and the heatmap values."""
    table, grid = {}, {}
    for rec in records.values():
        c, r = rec["config"], rec["result"]
        diverged = r["diverged_at"] is not None
        window = r["steps_per_epoch"]
        its = None if diverged else iterations_to_threshold(r["train_losses"], THRESHOLD[c["op"]], window)
        final = None if diverged else r["metrics"].get("train_loss")
        if c["beta"] in (None, BETA[c["op"]]) and c["alpha0"] in setup.alpha0s + (setup.alpha0,):
            row = table.setdefault(f"{c['model']}/{c['op']}/{c['lop']}", {})
            row.setdefault(format_value(c["alpha0"]), []).append(
                {"iterations_to_threshold": its, "final_train_loss": final,
                 "final_val_loss": None if diverged else r["metrics"].get("val_loss"),
                 "final_val_acc": None if diverged else r["metrics"].get("val_acc"),
                 "diverged_at": r["diverged_at"]})
        if c["model"] == "logreg" and c["op"] == "sgd" and c["lop"] == "sgd" and \
                c["beta"] in setup.grid_betas and c["alpha0"] in setup.grid_alpha0s:
            grid.setdefault(format_value(c["beta"]), {}).setdefault(format_value(c["alpha0"]), []).append(final)
    for row in table.values():
        for a, runs in row.items():
            its = [x["iterations_to_threshold"] for x in runs]
            row[a] = {"iterations_to_threshold": its[0] if len(its) == 1 else its,
                      "final_train_loss_mean": mean_sd([x["final_train_loss"] for x in runs])[0],
                      "final_val_loss_mean": mean_sd([x["final_val_loss"] for x in runs])[0],
                      "final_val_acc_mean": mean_sd([x["final_val_acc"] for x in runs])[0],
                      "n_diverged": sum(x["diverged_at"] is not None for x in runs)}
    heat = {b: {a: mean_sd(v)[0] for a, v in row.items()} for b, row in grid.items()}
    return {"thresholds": {OP_LABELS[o]: THRESHOLD[o] for o in setup.ops}, "table": table, "grid": heat}


def run_hd(out, setup: Setup = DEFAULT, *, formats=("png",), jobs=1, progress=True):
    """Run (or resume) the HD run table; write ``hd.json`` and the figures."""
    out = Path(out)
    records = run_table(out, hd_specs(setup), hd_job, jobs=jobs, progress=progress, desc="hd")
    summary = summarize(records, setup)
    results = write_results(out / "hd.json", "hd", setup._asdict(), records, summary)
    return [results, *hd_figures(records, summary, setup, out, formats)]
