"""Plot helpers: one style per method (colour, line, marker, label), contour plots, saving.

Every figure of hgref (experiments, notebooks, benchmarks) draws a method with
:func:`method_style`, so a method has the same colour and line style in every panel and
every figure. hgref's own rules use the colour-blind-safe Okabe–Ito palette with solid
lines; reference schedules are black; the learning-rate-free optimizers of
``hgref compare`` are dashed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "METHOD_STYLES", "method_style", "color", "contour", "save"]

#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


#: method key -> Matplotlib keyword arguments (``color``, ``ls``, ``marker``, ``label``).
METHOD_STYLES = {
    "constant": dict(color="#7F7F7F", ls=":", marker="s", label="constant"),
    "lrs_opt": dict(color="#000000", ls="-", marker="*", label="LRS-OPT"),
    "hd": dict(color=PALETTE[0], ls="-", marker="o", label="HD"),
    "hd-sgdn": dict(color=PALETTE[5], ls="-", marker="v", label="HD (lop SGDN)"),
    "hd-adam": dict(color=PALETTE[6], ls="-", marker="^", label="HD (lop Adam)"),
    "rtho": dict(color=PALETTE[1], ls="-", marker="D", label="RTHO"),
    "marthe_mu": dict(color=PALETTE[4], ls="-", marker="P", label="MARTHE fixed μ"),
    "marthe_hmu": dict(color=PALETTE[2], ls="-.", marker="X", label="MARTHE h_μ (fixed β)"),
    "marthe": dict(color=PALETTE[3], ls="-", marker="o", label="MARTHE (adaptive μ, β)"),
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


def color(i):
    return PALETTE[i % len(PALETTE)]


def contour(ax, f, xlim, ylim, n=200, levels=30, log=True):
    """Filled contours of f(w) on a grid (log-spaced levels by default)."""
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = np.array([[float(f(np.array([x, y]))) for x in xs] for y in ys])
    if log:
        Z = np.log10(Z - Z.min() + 1e-3)
    ax.contourf(X, Y, Z, levels=levels, cmap="Greys")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def save(fig, path, formats=("png",)):
    """Save ``fig`` as ``path.<fmt>`` for each format; returns the paths written."""
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
