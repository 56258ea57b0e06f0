"""The ``hgref hd`` figures: curves per model (``hd_curves_<model>``) and the β × α_0 heatmap
(``hd_grid``, reproducibility report Fig. 4).

Curves: one column per model optimizer, rows α_t, training loss (mean over the last epoch
of minibatches, with the threshold of §4) and validation loss per epoch, at α_0 of the
setup; one style per lop (:func:`hgref.plotting.method_style`: ``constant`` for lop none,
``hd``, ``hd-sgdn``, ``hd-adam``) in every panel, the constant baseline wide and underneath
so that an HD line on top of it leaves it visible; α_t on a symlog axis when some α_t = 0
(the clip of MARTHE Eq. 5), plain-decimal ticks on log axes spanning < 3 decades; a
diverged run ends in × at its last finite value and says so in the legend. One legend,
right of the figure. Heatmap: log colour scale with plain-decimal ticks, "diverged" cells.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import legend_outside, log_axis_with_zero, method_style, readable_log_ticks, save
from ._figures import pyplot
from .runner import format_value

__all__ = ["LOP_METHODS", "curves_figure", "grid_figure", "hd_figures"]

#: lop -> method key of :data:`hgref.plotting.METHOD_STYLES`.
LOP_METHODS = {"none": "constant", "sgd": "hd", "sgdn": "hd-sgdn", "adam": "hd-adam"}
_LOP_LABELS = {"none": "constant α", "sgd": "HD (lop SGD)", "sgdn": "HD (lop SGDN)", "adam": "HD (lop Adam)"}


def lop_style(lop, **overrides):
    """Style of a learning-rate optimizer (``"none"`` is the constant-α baseline)."""
    return method_style(LOP_METHODS[lop], label=_LOP_LABELS[lop], marker=None, **overrides)


def _plot(ax, x, y, style, diverged):
    x, y = np.asarray(x, dtype=float), np.array([np.nan if v is None else v for v in y], dtype=float)
    ax.plot(x, y, **style)
    if diverged:
        ok = np.nonzero(np.isfinite(y))[0]
        if ok.size:
            ax.plot([x[ok[-1]]], [y[ok[-1]]], ls="none", marker="x", ms=9, mew=2, color=style["color"],
                    label="_diverged", gid="diverged_end")


def curves_figure(records, setup, model):
    """Figure of one model: α_t, smoothed training loss, validation loss per op column."""
    from .hd import OP_LABELS as op_labels
    from .hd import THRESHOLD as threshold
    from .hd import smoothed
    plt = pyplot()
    fig, axes = plt.subplots(3, len(setup.ops), figsize=(4.6 * len(setup.ops) + 2.5, 9.5), squeeze=False,
                             layout="constrained")
    seed0 = setup.seeds[0]
    handles = {}
    for j, op in enumerate(setup.ops):
        for lop in setup.lops:
            key = f"seed={seed0}-{model}-{op}-{lop}-alpha0={format_value(setup.alpha0)}"
            if key not in records:
                continue
            r = records[key]["result"]
            div = r["diverged_at"] is not None
            style = lop_style(lop, **({"lw": 2.6, "zorder": 1} if lop == "none" else {}))  # under overlapping HD
            label = style["label"] + (f" (diverged at {r['diverged_at']})" if div else "")
            st = dict(style, label=label)
            _plot(axes[0, j], np.arange(len(r["alphas"])), r["alphas"], st, div)
            _plot(axes[1, j], np.arange(len(r["train_losses"])), smoothed(r["train_losses"], r["steps_per_epoch"]),
                  st, div)
            _plot(axes[2, j], r["eval_steps"], r["val_losses"], dict(st, marker="o", ms=3), div)
            handles.setdefault(label, axes[0, j].get_lines()[-1 - div])
        axes[1, j].axhline(threshold[op], color="k", ls=":", lw=1, label=f"threshold {threshold[op]}", gid="mark")
        log_axis_with_zero(axes[0, j], [line.get_ydata() for line in axes[0, j].get_lines()], zero_label="α = 0")
        axes[0, j].set(title=f"{model}, {op_labels[op]}: learning rate", xlabel="iteration", ylabel="α_t")
        axes[1, j].set(title=f"{model}, {op_labels[op]}: training loss (last-epoch mean)", xlabel="iteration",
                       ylabel="loss", yscale="log")
        axes[2, j].set(title=f"{model}, {op_labels[op]}: validation loss", xlabel="iteration", ylabel="loss",
                       yscale="log")
        for ax in axes[:, j]:
            readable_log_ticks(ax)
    from matplotlib.lines import Line2D
    extra = [Line2D([], [], color="k", ls=":", lw=1, label="loss threshold (§4)"),
             Line2D([], [], color="0.3", ls="none", marker="x", mew=2, label="diverged: last finite value")]
    legend_outside(axes[0, -1], "right", handles=list(handles.values()) + extra,
                   title=f"lop (α_0 = {setup.alpha0:g})", title_fontsize=8)
    return fig


def grid_figure(grid):
    """Heatmap of the final training loss of SGD-HD on logistic regression, β × α_0."""
    plt = pyplot()
    betas = sorted(grid, key=float)
    alphas = sorted({a for row in grid.values() for a in row}, key=float)
    Z = np.array([[np.nan if grid[b].get(a) is None else grid[b][a] for a in alphas] for b in betas], dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(alphas) + 3, 0.8 * len(betas) + 2), layout="constrained")
    from matplotlib.colors import LogNorm
    ok = Z[np.isfinite(Z) & (Z > 0)]
    lo, hi = (ok.min(), ok.max()) if ok.size else (1.0, 10.0)
    im = ax.imshow(Z, cmap="cividis_r", norm=LogNorm(lo, max(hi, lo * 1.01)), origin="lower", aspect="auto")
    for (bi, ai), z in np.ndenumerate(Z):
        dark = np.isfinite(z) and hi > lo and np.log(z / lo) / np.log(hi / lo) > 0.55
        ax.text(ai, bi, "diverged" if not np.isfinite(z) else f"{z:.3f}", ha="center", va="center", fontsize=7,
                color="#D55E00" if not np.isfinite(z) else "w" if dark else "k")
    ax.set_xticks(range(len(alphas)), alphas)
    ax.set_yticks(range(len(betas)), betas)
    ax.set(xlabel="initial learning rate α_0", ylabel="hyper-learning rate β",
           title="SGD-HD, logistic regression: final training loss")
    bar = fig.colorbar(im, ax=ax, label="final training loss (log scale)")
    readable_log_ticks(bar.ax)
    return fig


def hd_figures(records, summary, setup, out, formats=("png",)):
    """Write ``hd_curves_<model>`` per model and ``hd_grid``; returns the paths written."""
    paths = []
    for model in setup.models:
        fig = curves_figure(records, setup, model)
        paths += save(fig, Path(out) / f"hd_curves_{model}", formats)
    if summary["grid"]:
        paths += save(grid_figure(summary["grid"]), Path(out) / "hd_grid", formats)
    return paths
