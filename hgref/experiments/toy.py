"""Gradient descent on Beale and smoothed Bukin N.6 (MARTHE paper, Fig. 1 setting)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__, dynamics, problems, rules
from ..io import atomic_write_json, ensure_dir
from ..plotting import color, contour, save
from ..train import run

__all__ = ["constant_lr_trajectories", "TOY_VIEWS"]

#: Plot windows (x limits, y limits) per problem.
TOY_VIEWS = {"beale": ((-4.5, 4.5), (-4.5, 4.5)), "bukin": ((-15.0, 5.0), (-3.0, 3.0))}


def constant_lr_trajectories(out, steps=500, etas=(0.001, 0.003, 0.01), formats=("png",)):
    """Run GD with constant η on both problems; write ``toy.json`` and ``toy.<fmt>``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ensure_dir(out)
    results = {"config": {"steps": steps, "etas": list(etas), "dynamics": "sgd"},
               "hgref_version": __version__, "runs": []}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, problem in zip(axes, (problems.beale(), problems.bukin())):
        contour(ax, problem.objective, *TOY_VIEWS[problem.name])
        for i, eta in enumerate(etas):
            ws = [problem.w0]
            tr = run(problem, dynamics.sgd(), rules.constant(), eta, steps, on_divergence="return",
                     callback=lambda t, state, eta, info: ws.append(state.w))
            path = np.array(ws)
            label = f"η = {eta:g}" + (f" (diverged at {tr.diverged_at})" if tr.diverged_at is not None else "")
            ax.plot(path[:, 0], path[:, 1], "-", color=color(i), lw=1.5, label=label)
            results["runs"].append({"problem": problem.name, "eta": eta, "objective": tr.objective,
                                    "best_loss": float(np.min(tr.losses)) if len(tr.losses) else None,
                                    "diverged_at": tr.diverged_at, "w_final": tr.state.w})
        ax.plot(*problem.w0, "ko", label="start")
        ax.set_title(f"{problem.name}: {steps} steps of GD")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=8, loc="lower left")
    paths = save(fig, Path(out) / "toy", formats)
    paths.append(atomic_write_json(Path(out) / "toy.json", results))
    return paths

