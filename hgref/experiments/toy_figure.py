"""The ``hgref toy`` figure (MARTHE Fig. 1), one row per problem, four panels:

(a) contours with each method's path at its selected β (lowest final objective), markers
    every T/5 steps (t = 100, 200, … for T = 500) and at the end, the start, and the minimum (Beale) or the valley
    y = 0.01 x (Bukin); axes fitted to the paths, and a zoom inset on where the paths end
    when that region is small against the panel;
(b) the objective E(w_t) along those runs;
(c) final objective E(w_T) (filled, solid) and best objective within the run (hollow,
    dotted) against β; diverged β as × in one band per method; the selected β ringed;
(d) the schedules η_t (symlog when some η_t = 0, so a schedule that stops is drawn at 0).

One legend per row, right of the panels. Every series uses :func:`hgref.plotting.method_style`.
"""
from __future__ import annotations

import numpy as np

from ..plotting import (fit_window, legend_outside, line_style, log_axis_with_zero, mark_diverged, method_style,
                        readable_log_ticks)
from ._figures import pyplot
from .toy import METHODS, best_runs, make_problem

__all__ = ["MARKS", "ALL_BETAS", "TICKS", "build_figure"]

#: What panel (a) marks per problem: ("point", (x, y), label) or ("line", slope, label).
MARKS = {"beale": ("point", (3.0, 0.5), "minimum (3, 0.5)"), "bukin": ("line", 0.01, "valley y = 0.01 x")}
#: Per problem, the method whose schedules at every other finite β panel (d) adds as thin lines
#: (Bukin: each RTHO schedule rises, then drops to η = 0 and stays there; MARTHE §3).
ALL_BETAS = {"bukin": "rtho"}
#: Time markers per path: every T / TICKS steps (every 100 steps for T = 500).
TICKS = 5
_ORDER = METHODS + ("lrs_opt",)


def _every(steps):
    """Steps between the time markers of a path of ``steps`` steps."""
    return max(1, steps // TICKS)


def _width(i, k):
    """Line widths decreasing in drawing order: a path drawn on top of another leaves it visible."""
    return 1.2 + 1.1 * (k - 1 - i)


def _label(method, cfg, res):
    beta = f", β = {cfg['beta']:.0e}" if "beta" in cfg else ""
    final, best = res["final_objective"], res["best_objective"]
    return f"{method_style(method)['label']}{beta}: final {final:.4g}, best {best:.4g}"


def _draw_paths(ax, chosen, k):
    for i, (method, cfg, res) in enumerate(chosen):
        p = np.array(res["path"])
        every = _every(len(p) - 1)
        ticks = list(range(every, len(p) - 1, every))
        style = line_style(method, len(p), lw=_width(i, k), markevery=ticks, ms=5 + 2.5 * (k - 1 - i),
                           label=_label(method, cfg, res))
        ax.plot(p[:, 0], p[:, 1], **style)
        ax.plot(*p[-1], ls="none", marker=style["marker"], ms=9 + 4 * (k - 1 - i), mec="k", color=style["color"],
                label="_end", gid="end")


def _draw_marks(ax, name, w0):
    ax.plot(*w0, ls="none", marker="o", ms=9, color="k", mec="w", zorder=5, label=f"start ({w0[0]:g}, {w0[1]:g})",
            gid="start")
    kind, where, label = MARKS[name]
    if kind == "point":
        ax.plot(*where, ls="none", marker="*", ms=16, color="w", mec="k", label=label, gid="mark")
    else:
        xs = np.array(ax.get_xlim())
        ax.plot(xs, where * xs, color="k", ls="--", lw=1.0, label=label, gid="mark")
        ax.set_xlim(*xs)


def _panel_paths(ax, name, chosen):
    from matplotlib.ticker import MaxNLocator

    from ..plotting import contour
    problem = make_problem(name)
    w0 = np.asarray(problem.w0)
    pts = np.vstack([np.array(res["path"]) for _, _, res in chosen] + [w0[None]])
    if MARKS[name][0] == "point":
        pts = np.vstack([pts, np.array(MARKS[name][1])[None]])
    xlim, ylim = fit_window(pts)
    contour(ax, problem.objective, xlim, ylim, n=160)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    k = len(chosen)
    _draw_paths(ax, chosen, k)
    _draw_marks(ax, name, w0)
    # zoom on where the paths spend their last quarter, if that region is small in the panel
    start = 3 * (len(chosen[0][2]["path"]) - 1) // 4
    tails = np.vstack([np.array(res["path"])[start:] for _, _, res in chosen])
    zx, zy = fit_window(tails, margin=0.25)
    if (zx[1] - zx[0]) * (zy[1] - zy[0]) < 0.05 * (xlim[1] - xlim[0]) * (ylim[1] - ylim[0]):
        ins = ax.inset_axes(_free_corner(pts, xlim, ylim), gid="zoom")
        contour(ins, problem.objective, zx, zy, n=80)
        _draw_paths(ins, chosen, k)
        _draw_marks(ins, name, w0)
        ins.set_xlim(*zx)
        ins.set_ylim(*zy)
        ins.tick_params(labelsize=6)
        ins.xaxis.set_major_locator(MaxNLocator(3))
        ins.text(0.03, 0.97, f"zoom: t ≥ {start}", transform=ins.transAxes, ha="left", va="top", fontsize=7,
                 bbox=dict(fc="white", ec="none", alpha=0.8, pad=1))
        ax.indicate_inset_zoom(ins, edgecolor="0.2")


def _free_corner(pts, xlim, ylim, size=0.42):
    """Axes-fraction bounds of the inset corner holding the fewest path points."""
    u = (pts[:, 0] - xlim[0]) / (xlim[1] - xlim[0])
    v = (pts[:, 1] - ylim[0]) / (ylim[1] - ylim[0])
    corners = [(1 - size - 0.02, 1 - size - 0.02), (0.02, 1 - size - 0.02), (1 - size - 0.02, 0.02), (0.02, 0.02)]
    counts = [np.sum((u > a - 0.05) & (u < a + size + 0.05) & (v > b - 0.05) & (v < b + size + 0.05))
              for a, b in corners]
    a, b = corners[int(np.argmin(counts))]
    return [a, b, size, size]


def _floor():
    """Bukin's minimum value √(√ε + ε) (on the valley)."""
    eps = make_problem("bukin").info["eps"]
    return float(np.sqrt(np.sqrt(eps) + eps))


def _panel_objective(ax, name, chosen):
    k = len(chosen)
    for i, (method, cfg, res) in enumerate(chosen):
        e = np.array(res["objectives"], dtype=float)
        ax.plot(np.arange(len(e)), e, **line_style(method, len(e), phase=i / k, lw=_width(i, k),
                                                    label=_label(method, cfg, res)))
    if name == "bukin":
        ax.axhline(_floor(), color="0.4", ls="--", lw=1, label=f"floor √(√ε + ε) = {_floor():.4f}", gid="mark")
    ax.set(yscale="log", xlabel="step t", ylabel="objective E(w_t)",
           title=f"{name}: objective E(w_t)" + (" (minimum 0)" if name == "beale" else ""))
    readable_log_ticks(ax)


def _panel_beta(ax, name, mine, chosen_keys):
    lo, hi = np.inf, -np.inf
    rows = [m for m in METHODS if any(r["config"]["method"] == m for r in mine.values())]
    for row, method in enumerate(rows):
        runs = sorted((r for r in mine.values() if r["config"]["method"] == method), key=lambda r: r["config"]["beta"])
        ok = [r for r in runs if r["result"]["diverged_at"] is None]
        st = method_style(method)
        b = [r["config"]["beta"] for r in ok]
        fin = [r["result"]["final_objective"] for r in ok]
        best = [r["result"]["best_objective"] for r in ok]
        ax.plot(b, fin, color=st["color"], ls="-", marker=st["marker"], ms=6, label=f"{st['label']}: final")
        ax.plot(b, best, color=st["color"], ls=":", marker=st["marker"], ms=6, mfc="none",
                label=f"{st['label']}: best in run")
        lo, hi = min([lo, *fin, *best]), max([hi, *fin, *best])
        key = chosen_keys.get((name, method))
        if key is not None:
            ax.plot([mine[key]["config"]["beta"]], [mine[key]["result"]["final_objective"]], ls="none", marker="o",
                    ms=15, mfc="none", mec="k", mew=1.2, label="_selected", gid="selected")
        mark_diverged(ax, [r["config"]["beta"] for r in runs if r["result"]["diverged_at"] is not None], st, row)
    if np.isfinite(lo):
        span = max(hi / lo, 1.5)
        ax.set_ylim(lo / span ** 0.05, hi * span ** (0.08 + 0.07 * len(rows)))  # room for the × bands
    ax.set(xscale="log", yscale="log", xlabel="hyper-learning rate β", ylabel="objective",
           title=f"{name}: final (●) and best-in-run (○) vs β")
    readable_log_ticks(ax)


def _panel_eta(ax, name, chosen, mine):
    k = len(chosen)
    shown = [res["etas"] for _, _, res in chosen]
    if name in ALL_BETAS:
        method = ALL_BETAS[name]
        picked = {id(res) for _, _, res in chosen}
        for rec in sorted(mine.values(), key=lambda r: r["config"].get("beta", 0.0)):
            res = rec["result"]
            if rec["config"]["method"] == method and res["diverged_at"] is None and id(res) not in picked:
                ax.plot(res["etas"], color=method_style(method)["color"], lw=0.8, alpha=0.45,
                        label=f"_{method} β = {rec['config']['beta']:.0e}", gid="other_beta")
                shown.append(res["etas"])
    for i, (method, cfg, res) in enumerate(chosen):
        e = np.array(res["etas"], dtype=float)
        ax.plot(np.arange(len(e)), e, **line_style(method, len(e), phase=i / k, lw=_width(i, k),
                                                    label=_label(method, cfg, res)))
    log_axis_with_zero(ax, shown)
    ax.set(xlabel="step t", ylabel="learning rate η_t", title=f"{name}: learning rate η_t")


def _legend(ax, name, chosen, any_diverged):
    from matplotlib.lines import Line2D
    every = _every(len(chosen[0][2]["etas"]) if chosen else 0)
    handles = []
    for i, (method, cfg, res) in enumerate(chosen):
        st = method_style(method)
        handles.append(Line2D([], [], color=st["color"], ls=st["ls"], marker=st["marker"], lw=_width(i, len(chosen)),
                              label=_label(method, cfg, res)))
    kind, where, label = MARKS[name]
    handles += [Line2D([], [], ls="none", marker="o", color="k", label="start"),
                Line2D([], [], ls="none", marker="*", ms=12, color="w", mec="k", label=label) if kind == "point"
                else Line2D([], [], color="k", ls="--", lw=1.0, label=label),
                Line2D([], [], ls="none", marker="o", color="0.5", ms=5,
                       label=f"path markers every {every} steps; large: end"),
                Line2D([], [], color="0.3", ls="-", marker="o", label="β panel: final objective"),
                Line2D([], [], color="0.3", ls=":", marker="o", mfc="none", label="β panel: best in run"),
                Line2D([], [], ls="none", marker="o", ms=12, mfc="none", mec="k", label="β panel: selected β")]
    if name in ALL_BETAS:
        st = method_style(ALL_BETAS[name])
        handles.append(Line2D([], [], color=st["color"], lw=0.8, alpha=0.45,
                              label=f"η panel, thin: {st['label']} at the other β of the grid"))
    if name == "bukin":
        handles.append(Line2D([], [], color="0.4", ls="--", lw=1,
                              label=f"E panel: floor √(√ε + ε) = {_floor():.4f}"))
    if any_diverged:
        handles.append(Line2D([], [], ls="none", marker="x", color="0.3", mew=1.6, label="β panel: diverged"))
    setting = ""
    if chosen:
        cfg = chosen[0][1]
        setting = f"start ({cfg['w0'][0]:g}, {cfg['w0'][1]:g}), η_0 = {cfg['eta0']:g}" + (
            f", ε = {cfg['eps']:g}" if "eps" in cfg else "")
    legend_outside(ax, "right", handles=handles, title=f"{name}: {setting}\nselected β: lowest final E",
                   title_fontsize=8)


def build_figure(records):
    """The Figure of the toy ``records`` ({key: record}, as ``run_table`` returns)."""
    plt = pyplot()
    names = list(dict.fromkeys(rec["config"]["problem"] for rec in records.values()))
    chosen_keys = best_runs(records)
    fig, axes = plt.subplots(len(names), 4, figsize=(22, 4.8 * len(names)), squeeze=False,
                             layout="constrained")
    for row, name in zip(axes, names):
        mine = {k: r for k, r in records.items() if r["config"]["problem"] == name}
        chosen = [(m, records[chosen_keys[(name, m)]]["config"], records[chosen_keys[(name, m)]]["result"])
                  for m in _ORDER if (name, m) in chosen_keys]
        ax_p, ax_e, ax_b, ax_s = row
        if chosen:
            _panel_paths(ax_p, name, chosen)
        ax_p.set(title=f"{name}: paths at the selected β", xlabel="x", ylabel="y")
        _panel_objective(ax_e, name, chosen)
        _panel_beta(ax_b, name, mine, chosen_keys)
        _panel_eta(ax_s, name, chosen, mine)
        _legend(ax_s, name, chosen, any(r["result"]["diverged_at"] is not None for r in mine.values()))
    return fig
