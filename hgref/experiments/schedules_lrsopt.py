"""LRS-OPT runs of ``hgref schedules`` (MARTHE §5) and their convergence figure.

One run: the outer loop :func:`hgref.lrsopt.optimize_schedule` from η⁰ = η_0·1_T with fresh
minibatches every outer iteration (footnote 7; w_0 fixed by the seed), its hypergradient
from the NumPy oracle (float64) or, with ``device``, from the torch reverse mode
(:func:`hgref.torch.schedule_hypergradient`, float32 by default: the paper-scale path).
Validation loss and accuracy of the current schedule are evaluated on the seed's own
minibatch order (the one the online methods train on) every ``eval_every`` iterations;
the final schedule is trained on that order like every other method. The loop stops when
the schedule runs away (|η| > :data:`~hgref.experiments.flags.ETA_BOUND`); the run is
flagged by the rule of :mod:`hgref.experiments.flags` on the final training run, or on the
outer loop (f_T staying above f_T(η⁰)).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import dynamics, rules
from ..train import run
from ._figures import pyplot
from .flags import ETA_BOUND, divergence_flag

__all__ = ["lrs_opt_job", "convergence_figure", "outer_of"]


def outer_of(config):
    """The :class:`hgref.lrsopt.Outer` of a run config."""
    from ..lrsopt import make_outer
    hp = {"lr": config["lr"]}
    if config["outer"] == "pgd" and config.get("max_change") is not None:
        hp["max_change"] = config["max_change"]
    return make_outer(config["outer"], **hp)


def _replay(problem, dyn, schedule, config):
    return run(problem, dyn, rules.schedule("lrs_opt", lambda t: float(schedule[t])), 1.0, config["steps"],
               seed=config["seed"], on_divergence="return")


def _value_and_grad(problem, dyn, config):
    if config.get("device") is None:
        from ..oracle import hypergradient

        def numpy_vg(schedule, batch_seed):
            hg = hypergradient(problem, dyn, schedule, batch_seed)
            return hg.value, hg.grad
        return numpy_vg
    import torch

    from ..torch.lrs_opt import schedule_hypergradient
    from ..torch.mnist import mnist_torch
    tp = mnist_torch(problem, dtype=getattr(torch, config["torch_dtype"]), device=config["device"])

    def torch_vg(schedule, batch_seed):
        value, grad = schedule_hypergradient(tp, schedule, "sgd", batch_seed)
        return float(value), grad.detach().to("cpu", torch.float64).numpy()
    return torch_vg


def lrs_opt_job(config, scratch=None):
    """One LRS-OPT run of the run table (resumable through ``scratch``)."""
    from ..lrsopt import optimize_schedule
    from .schedules import problem_of, trajectory_record
    problem, dyn = problem_of(config), dynamics.sgd()
    state_path = None
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
        state_path = Path(scratch) / "lrs_opt_state.json"

    def evaluate(schedule):
        tr = _replay(problem, dyn, schedule, config)
        ok = tr.diverged_at is None
        return {"val_loss": tr.metrics["val_loss"] if ok else None, "val_acc": tr.metrics["val_acc"] if ok else None,
                "eta_max": float(np.max(schedule))}

    res = optimize_schedule(
        _value_and_grad(problem, dyn, config), np.full(config["steps"], config["eta0"]), outer_of(config),
        config["iterations"], seed=config["seed"], fresh_batches=True, state_path=state_path,
        config={"problem": problem.name, "device": config.get("device")}, evaluate=evaluate,
        eval_every=config["eval_every"], restart_above=config.get("restart"),
        callback=lambda k, schedule, value: not np.all(np.abs(schedule) <= ETA_BOUND))
    schedule = np.asarray(res.x, dtype=float)
    record = trajectory_record(_replay(problem, dyn, schedule, config))
    outer_flag = divergence_flag(np.zeros(len(res.history)), res.history)
    if record["flag"] is None and outer_flag is not None:
        record["flag"] = dict(outer_flag, where="outer loop (step = outer iteration)")
    return dict(record, lrs_opt_objective=res.fun, lrs_opt_history=res.history, lrs_opt_evals=res.evals,
                lrs_opt_restarts=res.restarts, lrs_opt_status=int(res.status), lrs_opt_message=res.message,
                lrs_opt_grad_norm=res.grad_norm, lrs_opt_stationary=bool(res.stationary))


def convergence_figure(records, summary, path, formats=("png",)):
    """LRS-OPT f_T (own fresh batches) and validation accuracy (seed's own order) vs outer
    iteration, per seed, with the best online method's mean validation level for reference."""
    from ..plotting import legend_outside, method_style, readable_log_ticks, save
    plt = pyplot()
    fig, (ax_f, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
    lrs = [r for r in records.values() if r["config"]["method"] == "lrs_opt"]
    styles = ("-", "--", ":", "-.")
    for i, rec in enumerate(lrs):
        res, seed = rec["result"], rec["config"]["seed"]
        style = method_style("lrs_opt", ls=styles[i % len(styles)], marker=None, label=f"LRS-OPT seed {seed}")
        history = np.array([np.nan if v is None else v for v in res["lrs_opt_history"]], dtype=float)
        ax_f.plot(np.arange(len(history)), history, lw=0.8, alpha=0.5, **dict(style, label=f"f_T, seed {seed}"))
        evals = [e for e in res["lrs_opt_evals"] if e.get("val_loss") is not None]
        ax_f.plot([e["iteration"] for e in evals], [e["val_loss"] for e in evals], lw=1.6,
                  **dict(style, label=f"validation loss (seed's order), seed {seed}"))
        ax_a.plot([e["iteration"] for e in evals], [100 * e["val_acc"] for e in evals], lw=1.6, **style)
    online = {f: row for f, row in summary["best"].items() if f not in ("constant", "lrs_opt")}
    if online:
        family, row = max(online.items(), key=lambda kv: kv[1]["val_acc_mean"])
        ref = method_style(family, marker=None)
        ax_a.axhline(100 * row["val_acc_mean"], color=ref["color"], ls=":",
                     label=f"best online: {ref['label']} ({100 * row['val_acc_mean']:.1f} %)")
        if row.get("val_loss_mean") is not None and np.isfinite(row["val_loss_mean"]):
            ax_f.axhline(row["val_loss_mean"], color=ref["color"], ls=":",
                         label=f"{ref['label']} validation loss ({row['val_loss_mean']:.3f})")
    ax_f.set(xlabel="outer iteration", ylabel="validation cross-entropy", yscale="log",
             title="LRS-OPT: f_T on fresh batches (thin), E(w_T) on the seed's order (thick)")
    ax_a.set(xlabel="outer iteration", ylabel="validation accuracy (%)", title="LRS-OPT validation accuracy")
    readable_log_ticks(ax_f)
    legend_outside(ax_f, "below")
    legend_outside(ax_a, "below")
    fig.tight_layout()
    return save(fig, path, formats)
