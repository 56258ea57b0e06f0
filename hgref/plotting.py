"""One plotting style for every figure of hgref (experiments, notebooks, benchmarks).

* :func:`method_style` / :func:`line_style`: one colour, line style, marker and label per
  method (colour-blind-safe Okabe–Ito colours for hgref's rules; reference schedules black
  or grey; the learning-rate-free optimizers of ``hgref compare`` dashed). Variants of one
  family (``"marthe_mu=0.9"``, ``"marthe_mu=0.99"``) keep the family colour and differ in
  line style (:func:`group_styles`).
* :func:`legend_outside`: legends beside or below the axes, never on the data;
  :func:`fit_window`: axes limits that fit a set of paths.
* :func:`readable_log_ticks`: plain decimals on a log axis spanning less than a decade.
* :func:`log_axis_with_zero`: a log axis on which zero stays visible (symlog, a line "η = 0").
* :func:`mark_diverged`, :func:`note_out_of_view`: diverged runs as × in a band per method
  inside the axes; values outside the limits marked ▼ and listed ("below axis: …" in the
  legend), never clipped silently.
* :func:`series`: the plotted lines of an axes as data, for tests of figures.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "METHOD_STYLES", "method_style", "line_style", "group_label", "group_styles",
           "color", "fit_window", "legend_outside", "readable_log_ticks", "log_axis_with_zero", "mark_diverged",
           "note_out_of_view", "series", "contour", "save"]

#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: method key -> Matplotlib keyword arguments (``color``, ``ls``, ``marker``, ``label``).
METHOD_STYLES = {
    "constant": dict(color="#7F7F7F", ls=":", marker="s", label="constant"),
    "lrs_opt": dict(color="#000000", ls="-", marker="*", label="LRS-OPT"),
    "hd": dict(color=PALETTE[0], ls="-", marker="o", label="HD"),
    "hd-sgdn": dict(color=PALETTE[5], ls="-", marker="v", label="HD (lop SGDN)"),
    "hd-adam": dict(color="#8F7A00", ls="-", marker="^", label="HD (lop Adam)"),  # darkened yellow
    "rtho": dict(color=PALETTE[1], ls="-", marker="D", label="RTHO"),
    "marthe_mu": dict(color=PALETTE[4], ls="-", marker="P", label="MARTHE fixed μ"),
    "marthe_hmu": dict(color=PALETTE[2], ls="-.", marker="X", label="MARTHE h_μ (fixed β)"),
    "marthe": dict(color=PALETTE[3], ls="-", marker="p", label="MARTHE (adaptive μ, β)"),
    "exponential": dict(color="#444444", ls="--", marker=None, label="exponential"),
    "staircase": dict(color="#444444", ls="-.", marker=None, label="staircase"),
    "sgdr": dict(color="#444444", ls=(0, (1, 1)), marker=None, label="SGDR"),
    "prodigy": dict(color="#8C564B", ls="--", marker="o", label="Prodigy"),
    "dadapt_sgd": dict(color="#17BECF", ls="--", marker="s", label="D-Adapt SGD"),
    "dadapt_adam": dict(color="#1F77B4", ls="--", marker="^", label="D-Adapt Adam"),
    "schedulefree_sgd": dict(color="#BCBD22", ls="--", marker="v", label="Schedule-Free SGD"),
    "schedulefree_adamw": dict(color="#9467BD", ls="--", marker="D", label="Schedule-Free AdamW"),
    "dog": dict(color="#E377C2", ls="--", marker="P", label="DoG"),
    "mechanic_sgd": dict(color="#2CA02C", ls="--", marker="X", label="Mechanic (SGD)"),
    "mechanic_adam": dict(color="#D62728", ls="--", marker="*", label="Mechanic (Adam)"),
}
#: Label of a variant ``"family=value"`` (default: ``"<family label> (value)"``).
VARIANT_LABELS = {"marthe_mu": "MARTHE μ = {}", "marthe_hmu": "MARTHE h_μ, β = {}"}
_VARIANT_LS = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)))


def method_style(method, **overrides):
    """Matplotlib keyword arguments drawing ``method`` (a key of :data:`METHOD_STYLES`;
    a key with a suffix, e.g. ``"marthe_mu=0.99"``, takes its family's style).

    >>> method_style("rtho")["label"]
    'RTHO'
    """
    family = method if method in METHOD_STYLES else str(method).split("=")[0]
    if family not in METHOD_STYLES:
        raise ValueError(f"unknown method {method!r}; accepted values: {', '.join(METHOD_STYLES)}")
    return {**METHOD_STYLES[family], **overrides}


def line_style(method, n, phase=0, marks=8, **overrides):
    """:func:`method_style` for a line of ``n`` points: about ``marks`` markers, shifted by
    ``phase`` (0…1) so that lines lying on each other still show every method's markers.

    >>> line_style("hd", 100, phase=0.5)["markevery"]
    (6, 12)
    """
    style = method_style(method, **overrides)
    if style.get("marker") and n > 1:
        every = max(1, n // marks)
        style.setdefault("markevery", (int(phase * every) % every, every))
    style.setdefault("ms", 5)
    return style


def group_label(group):
    """Legend label of a run group: ``"hd"`` → ``"HD"``, ``"marthe_mu=0.99"`` → ``"MARTHE μ = 0.99"``."""
    family, _, value = str(group).partition("=")
    label = method_style(family)["label"]
    if not value:
        return label
    return VARIANT_LABELS.get(family, label + " ({})").format(value)


def group_styles(groups):
    """``{group: style}``: each group its family's colour; the variants of a family (sorted)
    differ in line style, so every group looks the same in every panel of a figure."""
    groups = list(dict.fromkeys(groups))
    styles = {}
    for g in groups:
        family = str(g).split("=")[0]
        siblings = sorted((h for h in groups if str(h).split("=")[0] == family), key=_variant_key)
        style = method_style(g, label=group_label(g))
        if len(siblings) > 1:
            style["ls"] = _VARIANT_LS[siblings.index(g) % len(_VARIANT_LS)]
        styles[g] = style
    return styles


def _variant_key(group):
    """Sort key of a variant value: numbers first, in numeric order."""
    value = str(group).partition("=")[2]
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def color(i):
    """The i-th palette colour (for things that are not methods: seeds, thresholds)."""
    return PALETTE[i % len(PALETTE)]


def fit_window(points, margin=0.08):
    """(xlim, ylim) of the bounding box of ``points`` (k, 2), widened by ``margin`` per side:
    axes that fit a set of paths.

    >>> fit_window([[0.0, 1.0], [2.0, -1.0]], margin=0.1)
    ((-0.2, 2.2), (-1.2, 1.2))
    """
    p = np.asarray(points, dtype=float)
    lo, hi = p.min(axis=0), p.max(axis=0)
    pad = np.maximum((hi - lo) * margin, 1e-3 * np.maximum(1.0, np.abs(hi)))
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def legend_outside(ax, where="right", handles=None, **kwargs):
    """A legend beside (``"right"``) or below (``"below"``) ``ax``, off the data."""
    kw = dict(fontsize=8, frameon=False, borderaxespad=0.0)
    if where == "right":
        kw.update(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    elif where == "below":
        kw.update(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    else:
        raise ValueError(f"unknown where {where!r}; accepted values: right, below")
    kw.update(kwargs)
    return ax.legend(**kw) if handles is None else ax.legend(handles=handles, **kw)


def _plain(v, _pos=None):
    return "0" if v == 0 else f"{v:.6g}" if 1e-4 <= abs(v) < 1e5 else f"{v:.0e}"


def readable_log_ticks(ax, axis="y"):
    """Plain-decimal tick labels on a log ``axis`` that spans less than a decade (4–6 ticks:
    1.05, 1.1, … instead of ``1.1×10^0``) or less than three (1-2-5 ticks: 0.1, 0.2, 0.5, 1);
    wider spans keep the decade labels. Call after the limits are final."""
    from matplotlib import ticker
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    if a.get_scale() != "log" or lo <= 0 or hi / lo >= 1000:
        return
    if hi / lo < 10:
        ticks = ticker.MaxNLocator(5).tick_values(lo, hi)
    else:
        ticks = ticker.LogLocator(subs=(1.0, 2.0, 5.0)).tick_values(lo, hi)
    a.set_major_locator(ticker.FixedLocator([t for t in ticks if lo <= t <= hi and t > 0]))
    a.set_major_formatter(ticker.FuncFormatter(_plain))
    a.set_minor_formatter(ticker.NullFormatter())


def log_axis_with_zero(ax, values, axis="y", zero_label="η = 0"):
    """Log scale for positive ``values`` (iterable of arrays); if any value is 0, a symlog
    scale whose linear part lies below the smallest positive value, so 0 is drawn at 0 (a
    line labelled ``zero_label``), not dropped. Returns the linear threshold (None: pure log)."""
    arrays = [np.asarray(v, dtype=float) for v in values]
    flat = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    pos = flat[flat > 0]
    set_scale = ax.set_yscale if axis == "y" else ax.set_xscale
    if pos.size == 0 or not np.any(flat == 0):
        if pos.size:
            lo, hi = pos.min(), pos.max()
            if lo < hi <= lo * (1 + 1e-12):     # an ulp apart: log autoscaling collapses them
                (ax.set_ylim if axis == "y" else ax.set_xlim)(lo / 10, hi * 10)
            set_scale("log")
        return None
    lin = 10.0 ** math.floor(math.log10(pos.min()))
    if lin > pos.min():                         # log10 rounded up (999.9999999999999 → 3)
        lin /= 10
    set_scale("symlog", linthresh=lin, linscale=0.4)
    from matplotlib import ticker
    a = ax.yaxis if axis == "y" else ax.xaxis
    decades = range(int(round(math.log10(lin))), math.ceil(math.log10(pos.max())) + 1)
    step = max(1, len(decades) // 5)
    a.set_major_locator(ticker.FixedLocator([0.0] + [10.0 ** k for k in decades][::step]))
    a.set_major_formatter(ticker.FuncFormatter(lambda v, _p: "0" if v == 0 else f"$10^{{{math.log10(v):.0f}}}$"))
    a.set_minor_locator(ticker.NullLocator())
    line = ax.axhline if axis == "y" else ax.axvline
    line(0.0, color="0.5", lw=0.8, ls=":", zorder=0)
    if axis == "y":
        ax.annotate(zero_label, (1.0, 0.0), xycoords=("axes fraction", "data"), xytext=(-3, 3),
                    textcoords="offset points", ha="right", va="bottom", fontsize=8, color="0.35")
    return lin


def mark_diverged(ax, xs, style, row=0, label=None):
    """× at ``xs`` (data coordinates) in band ``row`` at the top inside ``ax`` (one row per
    method, so crosses of different methods do not overlap); returns the Line2D."""
    if not len(xs):
        return None
    y = 0.96 - 0.06 * row
    return ax.plot(xs, [y] * len(xs), ls="none", marker="x", ms=7, mew=1.6, color=style["color"],
                   transform=ax.get_xaxis_transform(), label=label or f"{style['label']} diverged",
                   gid="diverged")[0]


def note_out_of_view(ax, items, where="below", inline=False):
    """List values outside the limits: ``items`` are (x, text, style). Draws a ▼ (▲) at the
    bottom (top) edge per item and returns legend handles "below axis: <text>" (pass them to
    :func:`legend_outside`, so the list sits off the data); ``inline`` also writes one note
    inside the axes. Returns [] when nothing is out of view."""
    from matplotlib.lines import Line2D
    y, marker = (0.02, "v") if where == "below" else (0.98, "^")
    handles = []
    for x, text, style in items:
        ax.plot([x], [y], ls="none", marker=marker, ms=8, color=style["color"],
                transform=ax.get_xaxis_transform(), gid="out_of_view", label="_out_of_view")
        handles.append(Line2D([], [], ls="none", marker=marker, ms=8, color=style["color"],
                              label=f"{where} axis: {text}"))
    if items and inline:
        ax.text(0.5, y + (0.05 if where == "below" else -0.05), f"{where} axis: " + "; ".join(t for _, t, _ in items),
                transform=ax.transAxes, ha="center", va="bottom" if where == "below" else "top", fontsize=7.5,
                gid="out_of_view_note", bbox=dict(fc="white", ec="0.6", alpha=0.9, pad=2))
    return handles


def series(ax):
    """The lines of ``ax`` as data, for tests that check a figure's data, not its pixels:
    dicts with ``label``, ``color``, ``gid``, ``x``, ``y`` and ``coords``: ``"data"``,
    ``"y"`` (x in axes fraction: ``axhline``), ``"x"`` (y in axes fraction: marks in a band)."""
    from matplotlib.colors import to_hex
    out = []
    for line in ax.get_lines():
        tr = line.get_transform()
        coords = ("data" if tr == ax.transData else "y" if tr == ax.get_yaxis_transform()
                  else "x" if tr == ax.get_xaxis_transform() else "axes")
        out.append(dict(label=line.get_label(), color=to_hex(line.get_color()), gid=line.get_gid(), coords=coords,
                        x=np.asarray(line.get_xdata(), dtype=float), y=np.asarray(line.get_ydata(), dtype=float)))
    return out


def _grid_values(f, xs, ys):
    """f on the grid xs × ys, shape (len(ys), len(xs)): one call on the stacked grid when ``f``
    accepts it, else point by point."""
    X, Y = np.meshgrid(xs, ys)
    try:
        Z = np.asarray(f(np.array([X, Y])), dtype=float)
    except (TypeError, ValueError):
        Z = None
    if Z is None or Z.shape != X.shape:
        Z = np.array([[float(f(np.array([x, y]))) for x in xs] for y in ys])
    return X, Y, Z


def contour(ax, f, xlim, ylim, n=200, levels=30, log=True):
    """Filled contours of f(w) on an n × n grid (log-spaced levels by default)."""
    X, Y, Z = _grid_values(f, np.linspace(*xlim, n), np.linspace(*ylim, n))
    if log:
        Z = np.log10(Z - Z.min() + 1e-3)
    ax.contourf(X, Y, Z, levels=levels, cmap="Greys")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def save(fig, path, formats=("png",)):
    """Save ``fig`` as ``path.<fmt>`` for each format (atomically); returns the paths written."""
    import matplotlib.pyplot as plt

    path = Path(path)
    written = []
    for fmt in formats:
        out = path.with_suffix("." + fmt)
        tmp = out.with_name("." + out.name + ".tmp")
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        tmp.replace(out)
        written.append(out)
    plt.close(fig)
    return written
