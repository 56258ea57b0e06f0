"""The ``hgref schedules`` figure, MARTHE Fig. 2 layout, drawn from the run records and the
summary of :func:`hgref.experiments.schedules.summarize` whatever groups they hold:

(left) the LRS-OPT schedule of every seed that ran it (black, one line style per seed);
(centre) offline vs online schedules of the first seed, every group at its best β (symlog
    axis when some η_t = 0, so a schedule that stops is drawn at 0);
(right) mean validation accuracy over seeds against β per online group, band ±1 sd,
    constant and LRS-OPT as levels; a (group, β) with diverged seeds is ringed and labelled
    "k/n div." (× in the group's band at the top when every seed diverged); means below the
    axis (or whose ±1 sd band reaches below it) are marked ▼ at the bottom and listed
    ("below axis: …").

Every group has the same style (:func:`hgref.plotting.group_styles`) in every panel.
"""
from __future__ import annotations

import numpy as np

from ..plotting import group_styles, legend_outside, log_axis_with_zero, mark_diverged, note_out_of_view
from ._figures import pyplot

__all__ = ["build_figure", "schedules_figure", "accuracy_limits", "SEED_LS"]

#: Line styles of the LRS-OPT seeds (left panel).
SEED_LS = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (3, 1)))
#: The right panel shows at most this many points below the lowest reference level.
BELOW_REFERENCE = 8.0


def _group_and_key(cfg):
    from .runner import format_value
    from .schedules import _group
    group, beta = _group(cfg)
    return group, "none" if beta is None else format_value(beta)


def _best_record(records, summary, group, seed):
    entry = summary["groups"].get(group)
    if entry is None or entry["best_beta"] is None:
        return None
    for rec in records.values():
        if rec["config"]["seed"] == seed and _group_and_key(rec["config"]) == (group, entry["best_beta"]):
            return rec
    return None


def _order(groups):
    """Reference groups first (constant, LRS-OPT), then the online ones in a stable order."""
    from ..plotting import METHOD_STYLES
    from ..plotting import _variant_key as variant
    first = [g for g in ("constant", "lrs_opt") if g in groups]
    rest = [g for g in groups if g not in first]
    return first + sorted(rest, key=lambda g: (list(METHOD_STYLES).index(str(g).split("=")[0]), variant(g)))


def accuracy_limits(rows_by_group, levels, below=BELOW_REFERENCE):
    """(low, high) of the accuracy axis in %: all means ± sd, but not more than ``below``
    points under the lowest reference level (constant, LRS-OPT, each group's best mean)."""
    means = [100 * r["val_acc_mean"] for rows in rows_by_group.values() for r in rows if np.isfinite(r["val_acc_mean"])]
    if not means and not levels:
        return 0.0, 100.0
    low = min([100 * (r["val_acc_mean"] - r["val_acc_sd"]) for rows in rows_by_group.values() for r in rows
               if np.isfinite(r["val_acc_mean"])] + [100 * v for v in levels])
    high = max([100 * (r["val_acc_mean"] + r["val_acc_sd"]) for rows in rows_by_group.values() for r in rows
                if np.isfinite(r["val_acc_mean"])] + [100 * v for v in levels])
    best = [max(100 * r["val_acc_mean"] for r in rows if np.isfinite(r["val_acc_mean"]))
            for rows in rows_by_group.values() if any(np.isfinite(r["val_acc_mean"]) for r in rows)]
    floor = min(best + [100 * v for v in levels]) - below
    return max(low, floor) - 0.5, min(100.0, high + 1.0)


def _left(ax, records):
    lrs = sorted((r for r in records.values() if r["config"]["method"] == "lrs_opt"), key=lambda r: r["config"]["seed"])
    style = group_styles(["lrs_opt"])["lrs_opt"]
    for i, rec in enumerate(lrs):
        ax.plot(rec["result"]["etas"], color=style["color"], ls=SEED_LS[i % len(SEED_LS)], lw=1.3,
                label=f"LRS-OPT seed {rec['config']['seed']}")
    ax.set(xlabel="step t", ylabel="learning rate η_t", title="LRS-OPT schedules per seed")
    if lrs:
        ax.set_ylim(bottom=0.0)
        legend_outside(ax, "below")
    else:
        ax.text(0.5, 0.5, "LRS-OPT not run", ha="center", transform=ax.transAxes)


def _centre(ax, records, summary, styles, seed0):
    shown = []
    for group in styles:
        rec = _best_record(records, summary, group, seed0)
        if rec is None:
            continue
        cfg, etas = rec["config"], rec["result"]["etas"]
        st = dict(styles[group], marker=None)
        beta = f", β = {cfg['beta']:.0e}" if "beta" in cfg else ""
        ax.plot(etas, **dict(st, label=st["label"] + beta + (f", diverged at {rec['result']['diverged_at']}"
                                                            if rec["result"]["diverged_at"] is not None else "")))
        shown.append(etas)
    log_axis_with_zero(ax, shown)
    ax.set(xlabel="step t", ylabel="learning rate η_t", title=f"offline vs online schedules (seed {seed0})")
    legend_outside(ax, "below")


def _right(ax, summary, styles):
    online = [g for g in styles if g not in ("constant", "lrs_opt")]
    rows_by_group = {g: sorted(summary["groups"][g]["by_beta"].values(), key=lambda r: r["beta"]) for g in online}
    levels = {g: summary["best"][g]["val_acc_mean"] for g in ("constant", "lrs_opt") if g in summary["best"]}
    low, high = accuracy_limits(rows_by_group, list(levels.values()))
    below = []
    for row, group in enumerate(online):
        st, rows = styles[group], rows_by_group[group]
        ok = [r for r in rows if np.isfinite(r["val_acc_mean"])]
        b = np.array([r["beta"] for r in ok])
        m = 100 * np.array([r["val_acc_mean"] for r in ok])
        s = 100 * np.array([r["val_acc_sd"] for r in ok])
        ax.plot(b, m, color=st["color"], ls=st["ls"], marker=st["marker"], label=st["label"])
        ax.fill_between(b, m - s, m + s, color=st["color"], alpha=0.15, lw=0)
        for r in ok:
            if r["n_diverged"]:
                ax.plot([r["beta"]], [100 * r["val_acc_mean"]], ls="none", marker="o", ms=13, mfc="none",
                        mec=st["color"], label="_diverged seeds", gid="diverged_seeds")
                ax.annotate(f"{r['n_diverged']}/{r['n_seeds']} div.", (r["beta"], 100 * r["val_acc_mean"]),
                            xytext=(6, -10), textcoords="offset points", fontsize=7, color=st["color"])
            m_r, s_r = 100 * r["val_acc_mean"], 100 * r["val_acc_sd"]
            if m_r < low:
                below.append((r["beta"], f"{st['label']} β = {r['beta']:.0e}: {m_r:.1f} %", st))
            elif m_r - s_r < low:   # the mean is in view, its band reaches below the axis
                below.append((r["beta"], f"{st['label']} β = {r['beta']:.0e}: band to {m_r - s_r:.1f} %", st))
        mark_diverged(ax, [r["beta"] for r in rows if not np.isfinite(r["val_acc_mean"])], st, row,
                      label=f"{st['label']}: every seed diverged")
    for group, level in levels.items():
        st = styles[group]
        ax.axhline(100 * level, color=st["color"], ls=st["ls"], lw=1.2, label=f"{st['label']} ({100 * level:.1f} %)")
    ax.set_ylim(low, high + (6.0 if any(not np.isfinite(r["val_acc_mean"]) for rows in rows_by_group.values()
                                         for r in rows) else 0.0))
    # the band above the data holds the × of diverged β: no accuracy ticks above 100 %
    ax.set_yticks([t for t in ax.get_yticks() if low <= t <= min(high, 100.0)])
    notes = note_out_of_view(ax, below, "below")
    ax.set(xscale="log", xlabel="hyper-learning rate β", ylabel="validation accuracy (%)",
           title="mean validation accuracy over seeds (band: ±1 sd)")
    handles = [h for h in ax.get_lines() if not h.get_label().startswith("_")]
    legend_outside(ax, "right", handles=handles + notes)


def build_figure(records, summary):
    """The Figure of the schedules ``records`` ({key: record}) and their ``summary``."""
    plt = pyplot()
    fig, (ax_l, ax_c, ax_r) = plt.subplots(1, 3, figsize=(19, 5.6), layout="constrained")
    styles = group_styles(_order(list(summary["groups"])))
    seed0 = min(r["config"]["seed"] for r in records.values())
    _left(ax_l, records)
    _centre(ax_c, records, summary, styles, seed0)
    _right(ax_r, summary, styles)
    return fig


def schedules_figure(records, summary, path, formats=("png",)):
    """Fig. 2 (:func:`build_figure`) saved as ``path.<fmt>``; returns the paths written."""
    from ..plotting import save
    return save(build_figure(records, summary), path, formats)
